"""CLIP vision loading (HF folder, ComfyUI clip_vision file, open_clip file) and the Temp-C / FD metrics."""
import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from soundstage.metrics.asr import MetricUnavailable
from soundstage.metrics.clip_metrics import (clip_video_metrics, frechet_distance, frechet_from_stats, load_encoder,
                                             temporal_consistency)
from soundstage.models.common.checkpoint import CheckpointError
from soundstage.models.common.clip_vision import (clip_preprocess, embed_frames, infer_config, load_clip_vision,
                                                  vision_state_dict)

# Tiny tower: width 128 so the width//64 head rule gives the 2 heads the config uses.
TINY = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2, image_size=32,
            patch_size=8, projection_dim=24, hidden_act="quick_gelu")


def _frames(rng, n, h=48, w=64):
    return rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A random CLIPVisionModelWithProjection saved as a HF folder; returns (folder, model)."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    model = CLIPVisionModelWithProjection(CLIPVisionConfig(**TINY)).eval()
    folder = tmp_path_factory.mktemp("clip_hf")
    model.save_pretrained(str(folder))
    return folder, model


@pytest.fixture(scope="module")
def encoder(tiny_clip):
    return load_clip_vision(tiny_clip[0])


def _comfy_file(model, path, **extra):
    """The model in ComfyUI's clip_vision layout, with the position_ids buffer older exports carry."""
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    sd["vision_model.embeddings.position_ids"] = torch.arange(17)[None]
    sd.update(extra)
    save_file(sd, str(path))
    return path


def test_folder_load_matches_transformers(tiny_clip, encoder):
    _, model = tiny_clip
    px = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        want = model(pixel_values=px).image_embeds
        got = encoder(px)
    assert encoder.projected and encoder.dim == 24 and encoder.image_size == 32
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_single_file_with_inferred_config_equals_folder(tiny_clip, encoder, tmp_path):
    file = _comfy_file(tiny_clip[1], tmp_path / "tiny_clip_vision.safetensors")
    assert not (tmp_path / "config.json").exists()
    fields = infer_config(vision_state_dict(load_file(str(file))))
    assert {k: fields[k] for k in TINY} == TINY
    single = load_clip_vision(file)
    frames = _frames(np.random.default_rng(1), 4)
    torch.testing.assert_close(embed_frames(single, frames), embed_frames(encoder, frames), rtol=0, atol=1e-6)


def test_full_clip_model_folder_loads_its_vision_half(tmp_path):
    """A HF CLIPModel folder (text + vision, CLIPConfig with vision_config) as released by OpenAI."""
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(3)
    vision = {k: v for k, v in TINY.items() if k != "projection_dim"}
    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, vocab_size=99)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=20)).eval()
    model.save_pretrained(str(tmp_path))
    enc = load_clip_vision(tmp_path)
    px = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want = model.visual_projection(model.vision_model(pixel_values=px).pooler_output)
        torch.testing.assert_close(enc(px), want, rtol=0, atol=1e-6)
    assert enc.dim == 20


def _meta_tower(width, patch, grid, layers, mlp, proj):
    meta = lambda *shape: torch.empty(shape, device="meta")
    sd = {"vision_model.embeddings.patch_embedding.weight": meta(width, 3, patch, patch),
          "vision_model.embeddings.position_embedding.weight": meta(grid * grid + 1, width),
          "visual_projection.weight": meta(proj, width)}
    for i in range(layers):
        sd[f"vision_model.encoder.layers.{i}.mlp.fc1.weight"] = meta(mlp, width)
    return vision_state_dict(sd)


@pytest.mark.parametrize("shapes, want", [
    # Published configs: openai/clip-vit-base-patch32, openai/clip-vit-large-patch14, and ComfyUI's
    # clip_vision_config_h.json / _g.json (LAION OpenCLIP ViT-H/14, ViT-bigG/14).
    ((768, 32, 7, 12, 3072, 512), dict(num_attention_heads=12, image_size=224, hidden_act="quick_gelu")),
    ((1024, 14, 16, 24, 4096, 768), dict(num_attention_heads=16, image_size=224, hidden_act="quick_gelu")),
    ((1280, 14, 16, 32, 5120, 1024), dict(num_attention_heads=16, image_size=224, hidden_act="gelu")),
    ((1664, 14, 16, 48, 8192, 1280), dict(num_attention_heads=16, image_size=224, hidden_act="gelu")),
])
def test_config_inferred_for_released_towers(shapes, want):
    width, patch, grid, layers, mlp, proj = shapes
    fields = infer_config(_meta_tower(*shapes))
    assert fields == {**want, "hidden_size": width, "patch_size": patch, "num_hidden_layers": layers,
                      "intermediate_size": mlp, "projection_dim": proj, "num_channels": 3}
    assert infer_config(_meta_tower(*shapes), hidden_act="gelu")["hidden_act"] == "gelu"


def test_pooled_output_without_projection(tiny_clip, tmp_path):
    _, model = tiny_clip
    pooled = load_clip_vision(_comfy_file(model, tmp_path / "x.safetensors"), use_projection=False)
    px = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want = model.vision_model(pixel_values=px).pooler_output
        got = pooled(px)
    assert not pooled.projected and pooled.dim == 128
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_open_clip_file_matches_open_clip(tmp_path):
    transformer = pytest.importorskip("open_clip.transformer")
    torch.manual_seed(1)
    visual = transformer.VisionTransformer(image_size=32, patch_size=8, width=128, layers=2, heads=2, mlp_ratio=2.0,
                                           output_dim=24).eval()
    save_file({"visual." + k: v.contiguous() for k, v in visual.state_dict().items()}, str(tmp_path / "oc.safetensors"))
    # open_clip's default activation is exact GELU; the inferred config follows OpenAI's quick_gelu unless told.
    enc = load_clip_vision(tmp_path / "oc.safetensors", hidden_act="gelu")
    px = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(enc(px), visual(px), rtol=0, atol=1e-5)


def test_wrong_file_names_missing_and_unexpected_keys(tiny_clip, tmp_path):
    folder, model = tiny_clip
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    sd["vision_model.encoder.layers.1.mlp.fc_1.weight"] = sd.pop("vision_model.encoder.layers.1.mlp.fc1.weight")
    save_file(sd, str(tmp_path / "bad.safetensors"))
    shutil.copy(folder / "config.json", tmp_path / "config.json")
    with pytest.raises(CheckpointError) as err:
        load_clip_vision(tmp_path / "bad.safetensors")
    msg = str(err.value)
    assert "bad.safetensors" in msg and "missing" in msg and "unexpected" in msg
    assert "encoder.layers.1.mlp.fc1.weight" in msg and "encoder.layers.1.mlp.fc_1.weight" in msg


def test_not_a_clip_file_is_refused(tmp_path):
    save_file({"decoder.conv.weight": torch.zeros(4, 4)}, str(tmp_path / "vae.safetensors"))
    with pytest.raises(CheckpointError, match="no CLIP vision tower keys"):
        load_clip_vision(tmp_path / "vae.safetensors")


def test_preprocess_resizes_shortest_side_and_centre_crops():
    # 32 x 96 frame, white in columns 24..72 and black outside: only a centred square crop (columns
    # 32..64, with an 8-column margin for the resampling filter) sees nothing but white.
    frame = torch.zeros(1, 3, 32, 96, dtype=torch.uint8)
    frame[..., 24:72] = 255
    mean, std = torch.full((1, 3, 1, 1), 0.5), torch.full((1, 3, 1, 1), 0.25)
    out = clip_preprocess(frame, 16, mean, std)
    assert out.shape == (1, 3, 16, 16)
    torch.testing.assert_close(out, torch.full_like(out, 2.0))  # (1 - 0.5) / 0.25
    squashed = clip_preprocess(frame, 16, mean, std, crop=False)  # keeps the black sides
    assert squashed.shape == (1, 3, 16, 16) and squashed[..., 0].max() < -1.9 and squashed[..., 8].min() > 1.9


def test_preprocess_matches_pil_bicubic_pipeline():
    """OpenAI CLIP's transform: PIL bicubic resize of the shortest side, centre crop, mean/std."""
    from PIL import Image
    from soundstage.models.common.clip_vision import CLIP_MEAN, CLIP_STD

    y, x = np.mgrid[0:60, 0:84]
    img = (np.stack([np.sin(x / 5.0), np.cos(y / 7.0), ((x + y) % 16) / 8.0 - 1], -1) * 127 + 128).astype(np.uint8)
    resized = np.asarray(Image.fromarray(img).resize((44, 32), Image.BICUBIC), dtype=np.float32) / 255
    want = (resized[:, 6:38] - np.array(CLIP_MEAN, np.float32)) / np.array(CLIP_STD, np.float32)
    mean, std = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    got = clip_preprocess(torch.from_numpy(img).permute(2, 0, 1)[None], 32, mean, std)[0].permute(1, 2, 0)
    # torch's uint8 bicubic is PIL's kernel; integer rounding may differ by one level on a few pixels.
    err = (got - torch.from_numpy(want)).abs()
    one_level = 1 / 255 / min(CLIP_STD) + 1e-5
    assert err.max() <= one_level and (err < 1e-5).float().mean() > 0.99


def test_temp_c_static_video_is_one_and_noise_lower(encoder):
    rng = np.random.default_rng(0)
    static = np.repeat(_frames(rng, 1), 8, axis=0)
    noise = _frames(rng, 8)
    t_static = temporal_consistency(embed_frames(encoder, static))
    t_noise = temporal_consistency(embed_frames(encoder, noise))
    assert t_static == pytest.approx(1.0, abs=1e-6)
    assert t_noise < 0.99


def test_temp_c_smooth_motion_beats_shuffled_frames(encoder):
    # A grating drifting one sixteenth of a period per frame, and the same frames shuffled.
    x = np.linspace(0, 1, 64)[None, :, None]
    grating = [(np.sin(2 * np.pi * (2 * x + i / 16)) * 0.5 + 0.5) * np.ones((48, 64, 3)) for i in range(16)]
    frames = (np.stack(grating) * 255).astype(np.uint8)
    shuffled = frames[np.random.default_rng(2).permutation(16)]
    smooth = temporal_consistency(embed_frames(encoder, frames))
    mixed = temporal_consistency(embed_frames(encoder, shuffled))
    assert smooth > mixed + 0.01


def test_frechet_distance_closed_forms():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 12))
    shift = rng.normal(size=12)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-7)
    # Same covariance, shifted mean: FD is exactly ||shift||^2.
    assert frechet_distance(a, a + shift) == pytest.approx(float(shift @ shift), rel=1e-6)
    # Diagonal Gaussians: sum (mu diff)^2 + (sqrt(s1) - sqrt(s2))^2.
    s1, s2 = rng.uniform(0.5, 2, 12), rng.uniform(0.5, 2, 12)
    mu1, mu2 = rng.normal(size=12), rng.normal(size=12)
    want = float(((mu1 - mu2) ** 2).sum() + ((np.sqrt(s1) - np.sqrt(s2)) ** 2).sum())
    assert frechet_from_stats(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(want, rel=1e-9)


def test_frechet_distance_with_fewer_samples_than_dims_is_finite():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(10, 64))  # singular covariance, as for a short clip and a wide CLIP
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, a + 1.0) == pytest.approx(64.0, rel=1e-4)


def test_clip_fd_of_frames_self_zero_and_shifted_larger(encoder):
    rng = np.random.default_rng(4)
    pred = _frames(rng, 10)
    brighter = np.clip(pred.astype(int) + 80, 0, 255).astype(np.uint8)
    same = clip_video_metrics(encoder, pred, pred)
    shifted = clip_video_metrics(encoder, pred, brighter)
    assert same["fd"] == pytest.approx(0.0, abs=1e-6) and same["frames"] == 10
    assert shifted["fd"] > 0.5
    assert np.isnan(clip_video_metrics(encoder, pred)["fd"])


def test_metric_unavailable_without_weights(tmp_path):
    with pytest.raises(MetricUnavailable, match="need CLIP vision weights"):
        load_encoder(None)
    with pytest.raises(MetricUnavailable, match="not found"):
        load_encoder(tmp_path / "nothing.safetensors")


def test_node_scores_video_against_reference(tiny_clip, tmp_path):
    from media_factory import make_video
    from soundstage.headless.runner import Runner

    (tmp_path / "models" / "clip_vision").mkdir(parents=True)
    _comfy_file(tiny_clip[1], tmp_path / "models" / "clip_vision" / "tiny.safetensors")
    (tmp_path / "in").mkdir()
    make_video(tmp_path / "in" / "clip.mp4", seconds=0.5, fps=12, size=(64, 48))
    prompt = {
        "1": {"class_type": "LoadVideo", "inputs": {"file": "clip.mp4"}},
        "2": {"class_type": "SoundstageCLIPVideoMetrics",
              "inputs": {"pred": ["1", 0], "clip_name": "tiny.safetensors", "stride": 1, "reference": ["1", 0]}},
    }
    result = Runner(input_dir=tmp_path / "in", output_dir=tmp_path / "out", models_dir=tmp_path / "models").run(prompt)
    temp_c, fd, report = result.values["2"]
    assert -1.0 <= temp_c <= 1.0 and fd == pytest.approx(0.0, abs=1e-6)
    assert "temp_c" in report and "CLIP video metrics" in result.outputs["2"]["text"][0]


def test_node_errors_name_node_and_input(tiny_clip, tmp_path):
    from soundstage.nodes.metrics import clip_video_metrics as node_metrics

    images = torch.rand(1, 16, 16, 3)
    with pytest.raises(ValueError, match="SoundstageCLIPVideoMetrics: input 'pred'"):
        node_metrics(images, "tiny.safetensors")
    with pytest.raises(ValueError, match="SoundstageCLIPVideoMetrics: input 'clip_name'"):
        node_metrics(torch.rand(3, 16, 16, 3), "none")


def test_eval_with_clip_flag(tiny_clip, tmp_path):
    from media_factory import make_audio, make_video
    from soundstage.cli import main

    ref, pred = tmp_path / "ref", tmp_path / "pred"
    ref.mkdir(), pred.mkdir()
    make_video(ref / "c0.mp4", seconds=0.5, fps=12, size=(64, 48), audio="tone", sample_rate=16000, channels=1)
    make_audio(ref / "c0_speech.wav", seconds=0.5, sample_rate=16000)
    (ref / "manifest.json").write_text(json.dumps({"clips": [{"id": "c0", "video": "c0.mp4",
                                                              "speech": "c0_speech.wav", "fps": 12}]}))
    shutil.copy(ref / "c0.mp4", pred / "c0.mp4")
    assert main(["eval", "--pred", str(pred), "--ref", str(ref), "--out", str(tmp_path / "plain")]) == 0
    plain = json.loads((tmp_path / "plain" / "report.json").read_text())["clips"][0]
    assert "temp_c" not in plain  # without weights nothing CLIP-based is computed
    assert main(["eval", "--pred", str(pred), "--ref", str(ref), "--out", str(tmp_path / "rep"),
                 "--clip", str(tiny_clip[0])]) == 0
    row = json.loads((tmp_path / "rep" / "report.json").read_text())["clips"][0]
    assert row["clip_fd"] == pytest.approx(0.0, abs=1e-6) and 0.9 < row["temp_c"] <= 1.0 + 1e-6
    assert "temp_c" in (tmp_path / "rep" / "report.md").read_text()
