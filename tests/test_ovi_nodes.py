"""Ovi nodes and workflows: tiny random models in a temporary models folder, run headless."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from soundstage.compat import io
from soundstage.models.ovi.sampler import OviConditioning, OviSampling, sample_ovi
from soundstage.testing.ovi import tiny_fusion, tiny_umt5_state_dict, write_tiny_tokenizer
from soundstage.models.ovi.video_vae import build_wan_vae, decode_video, encode_image, load_wan_vae
from soundstage.nodes import ovi as nodes
from helpers import runner_folders, temporary_models_dir, write_codec_files


REPO = Path(__file__).resolve().parents[1]
TINY_VAE = dict(base_dim=8, decoder_base_dim=8, dim_mult=[1, 2, 2, 2], num_res_blocks=1)
TINY_WIDGETS = {"1.num_heads": 2, "1.text_len": 16, "3.text_len": 16, "6.precision": "fp32", "5.width": 32, "5.height": 32,
                "5.latent_frames": 2, "5.audio_length": 8, "5.steps": 2, "5.slg_layer": 1,
                "5.size_mode": "exact"}


def _tiny_vae_file(path: Path, seed: int = 0) -> None:
    torch.manual_seed(seed)
    vae = build_wan_vae(**TINY_VAE)
    sd = {k: (torch.randn_like(v) * 0.2 if v.dim() > 1 else v.clone()) for k, v in vae.state_dict().items()}
    save_file(sd, str(path), metadata={"config": json.dumps(TINY_VAE)})


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    with temporary_models_dir(tmp_path_factory.mktemp("ovi") / "models",
                              "soundstage/ovi", "text_encoders/umt5-xxl", "vae", "soundstage/mmaudio") as root:
        _write_tiny_models(root)
        yield root


def _write_tiny_models(root: Path) -> None:
    save_file({k: v.contiguous() for k, v in tiny_fusion(seed=2).state_dict().items()},
              str(root / "soundstage/ovi/model.safetensors"))
    # Ovi 1.1's file names: same layout, the release told by the name.
    for name in ("model_960x960.safetensors", "model_960x960_10s.safetensors"):
        (root / "soundstage/ovi" / name).write_bytes((root / "soundstage/ovi/model.safetensors").read_bytes())
    save_file(tiny_umt5_state_dict(), str(root / "text_encoders/umt5-xxl-enc-bf16.safetensors"))
    # The names Ovi downloads: Wan's own .pth layouts for the text encoder and the VAE.
    torch.save(tiny_umt5_state_dict(wan_naming=True), root / "text_encoders/models_t5_umt5-xxl-enc-bf16.pth")
    write_tiny_tokenizer(root / "text_encoders/umt5-xxl/tokenizer.json")
    _tiny_vae_file(root / "vae/wan2.2_vae.safetensors")
    torch.save(_to_wan_layout(load_file(str(root / "vae/wan2.2_vae.safetensors"))), root / "vae/Wan2.2_VAE.pth")
    write_codec_files(root / "soundstage/mmaudio")


def test_schemas_are_complete():
    for node in nodes.NODES:
        schema = node.define_schema()
        assert schema.node_id.startswith("SoundstageOvi") or schema.node_id.startswith("SoundstageWan")
        assert schema.category == "Soundstage/Ovi" and schema.display_name
        assert not {i.id for i in schema.inputs} & {o.id for o in schema.outputs}, schema.node_id
        for inp in schema.inputs:
            if isinstance(inp, (io.Int.Input, io.Float.Input)):
                assert inp.default is not None and inp.min is not None and inp.max is not None and inp.step, inp.id
            if isinstance(inp, io.WidgetInput):
                assert inp.tooltip, f"{schema.node_id}.{inp.id} has no tooltip"
    sampler = {i.id: i for i in nodes.OviSampler.define_schema().inputs}
    assert (sampler["steps"].default, sampler["shift"].default, sampler["video_cfg"].default,
            sampler["audio_cfg"].default, sampler["slg_layer"].default) == (50, 5.0, 4.0, 3.0, 11)


def test_prompt_builder_node():
    out = nodes.OviPromptBuilder.execute("Two friends at a cafe.", "Hi!\n\nHow are you?", "Chatter.", "720x720_5s",
                                         "blur", "hiss")
    assert out.args[0] == "Two friends at a cafe. <S>Hi!<E> <S>How are you?<E> <AUDCAP>Chatter.<ENDAUDCAP>"
    assert out.args[1:] == ("blur", "hiss")
    assert out.ui.as_dict() == {"text": (out.args[0],)}  # the built prompt shows on the node
    with pytest.raises(ValueError, match="Ovi Prompt Builder: input 'video_prompt'"):
        nodes.ovi_prompt("", "", "", "720x720_5s", "", "")


def test_node_chain_matches_direct_calls(models_dir):
    choices = nodes.tokenizer_choices()  # the user's, beside the pack's shipped tiny defaults' own
    assert "umt5-xxl/tokenizer.json" in choices
    assert all(c == "umt5-xxl/tokenizer.json" or c.startswith("soundstage-tiny/") for c in choices)
    ovi = nodes.load_ovi_model("model.safetensors", "fp32", "none", 0, 2, 16)
    enc = nodes.load_text_encoder("umt5-xxl-enc-bf16.safetensors", "umt5-xxl/tokenizer.json", 16)
    cond = nodes.encode_ovi_text(enc, "w1 w2 w3", "w4", "w5 w6")
    assert [cond[k].shape[0] for k in ("positive", "video_negative", "audio_negative")] == [4, 2, 3]
    video, audio = nodes.ovi_sample(ovi, cond, 32, 64, 2, 8, 2, 5.0, 4.0, 3.0, 1, 7, True)
    assert video["samples"].shape == (1, 48, 2, 4, 2) and audio["samples"].shape == (1, 20, 8)
    c = OviConditioning(cond["positive"], cond["video_negative"], cond["audio_negative"])
    v, a = sample_ovi(ovi.module, c, latent_frames=2, latent_height=4, latent_width=2, audio_length=8,
                      sampling=OviSampling(steps=2, slg_layer=1, seed=7))
    torch.testing.assert_close(video["samples"][0], v, atol=1e-5, rtol=0)
    torch.testing.assert_close(audio["samples"][0], a.T, atol=1e-5, rtol=0)
    vae = nodes.load_video_vae("wan2.2_vae.safetensors", "fp32")
    frames = nodes.wan_decode(vae, video)
    assert frames.shape == (5, 64, 32, 3) and 0 <= frames.min() and frames.max() <= 1
    vae.module.enable_tiling(tile_sample_min_height=32, tile_sample_min_width=32, tile_sample_stride_height=16,
                      tile_sample_stride_width=16)
    tiled = nodes.wan_decode(vae, video, tiled=True)
    assert tiled.shape == frames.shape and (tiled - frames).abs().max() > 0  # really went through tiles
    torch.testing.assert_close(nodes.wan_decode(vae, video), frames, atol=0, rtol=0)  # tiled=False: whole frames
    assert vae.module.use_tiling  # and the VAE's own setting is left as it was


def test_fp8_block_swap_loader_runs(models_dir):
    ovi = nodes.load_ovi_model("model.safetensors", "fp8_e4m3", "block_swap", 1, 2, 16)
    assert ovi.module.video_model.blocks[0].ffn[0].weight.dtype == torch.float8_e4m3fn
    cond = {"positive": torch.randn(3, 24), "video_negative": torch.randn(2, 24), "audio_negative": torch.randn(2, 24)}
    video, audio = nodes.ovi_sample(ovi, cond, 32, 32, 2, 8, 2, 5.0, 4.0, 3.0, 1, 7, True)
    assert ovi.swap is not None and ovi.swap.loads == 2  # one streamed block, once per batched forward, 2 steps
    assert torch.isfinite(video["samples"]).all() and torch.isfinite(audio["samples"]).all()


def test_fp8_without_block_swap_keeps_fp8_storage_through_the_model_handle(models_dir):
    ovi = nodes.load_ovi_model("model.safetensors", "fp8_e4m3", "none", 0, 2, 16)
    with ovi.use() as model:  # a dtype-casting placement would turn the fp8 blocks into bf16 here
        assert model.video_model.blocks[0].ffn[0].weight.dtype == torch.float8_e4m3fn
        assert model.video_model.patch_embedding.weight.dtype == torch.bfloat16
    assert ovi.module.video_model.blocks[0].ffn[0].weight.dtype == torch.float8_e4m3fn


def test_errors_name_node_and_input(models_dir):
    ovi = nodes.load_ovi_model("model.safetensors", "fp32", "none", 0, 2, 16)
    cond = {"positive": torch.randn(3, 24), "video_negative": torch.randn(2, 24), "audio_negative": torch.randn(2, 24)}
    with pytest.raises(ValueError, match="Ovi Sampler: input 'width'"):
        nodes.ovi_sample(ovi, cond, 30, 32, 2, 8, 1, 5.0, 4.0, 3.0, 1, 0, True)
    with pytest.raises(ValueError, match="Ovi Sampler: input 'slg_layer'"):
        nodes.ovi_sample(ovi, cond, 32, 32, 2, 8, 1, 5.0, 4.0, 3.0, 5, 0, True)
    with pytest.raises(FileNotFoundError, match="Load Ovi Model: input 'ckpt_name'"):
        nodes.load_ovi_model("missing.safetensors", "fp32", "none", 0, 2, 16)
    bad = models_dir / "soundstage/ovi/bad.safetensors"
    save_file({"video_model.patch_embedding.weight": torch.zeros(2)}, str(bad))
    with pytest.raises(ValueError, match="Load Ovi Model: input 'ckpt_name'"):
        nodes.load_ovi_model("bad.safetensors", "fp32", "none", 0, 2, 16)
    with pytest.raises(ValueError, match="Load Ovi Model: input 'resident_blocks'"):
        nodes.load_ovi_model("model.safetensors", "fp32", "block_swap", 9, 2, 16)


def test_wan_vae_config_read_from_weights():
    from soundstage.models.ovi.video_vae import WAN22_CONFIG, config_from_state_dict

    with torch.device("meta"):
        full = build_wan_vae()
        tiny = build_wan_vae(**TINY_VAE)
    cfg = config_from_state_dict(full.state_dict())
    assert cfg == {k: WAN22_CONFIG[k] for k in cfg}
    tcfg = config_from_state_dict(tiny.state_dict())
    assert {k: tcfg[k] for k in TINY_VAE} == TINY_VAE


def test_wan_vae_round_trip_normalisation(models_dir):
    vae = load_wan_vae(models_dir / "vae/wan2.2_vae.safetensors")
    assert vae.config.z_dim == 48 and vae.config.base_dim == 8
    img = torch.rand(1, 32, 48, 3)
    z = encode_image(vae, img)
    assert z.shape == (1, 48, 1, 2, 3)
    mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
    mu = vae.encode((img * 2 - 1).permute(0, 3, 1, 2)[:, :, None]).latent_dist.mode()
    torch.testing.assert_close(z * std + mean, mu, atol=1e-5, rtol=1e-5)
    out = decode_video(vae, z)
    assert out.shape == (1, 1, 32, 48, 3)


def _runner(needs: set[str]):
    from soundstage.headless import runner
    from soundstage.headless.registry import core_nodes

    # The workflows need these core stand-ins: losing one is a failure, not a reason to skip.
    missing = needs - set(core_nodes())
    assert not missing, f"headless core stand-ins missing: {sorted(missing)}"
    return runner


@pytest.mark.parametrize("name", ["t2av_ovi", "i2av_ovi"])
def test_workflow_runs_headless(models_dir, tmp_path, name):
    runner_mod = _runner({"CreateVideo", "SaveVideo"} | ({"LoadImage"} if name == "i2av_ovi" else set()))
    import av
    import numpy as np

    inp, out = runner_folders(tmp_path)
    overrides = dict(TINY_WIDGETS)
    if name == "i2av_ovi":
        from PIL import Image

        Image.fromarray((np.random.default_rng(0).random((40, 56, 3)) * 255).astype("uint8")).save(inp / "ovi_start.png")
        overrides.update({"15.width": 32, "15.height": 32})
    r = runner_mod.Runner(input_dir=inp, output_dir=out, models_dir=models_dir)
    r.run(REPO / "workflows" / f"{name}.json", overrides=overrides)
    files = sorted(p for p in out.rglob("*") if p.suffix in (".mp4", ".mkv", ".webm", ".mov"))
    assert files, "SaveVideo wrote no file"
    with av.open(str(files[0])) as c:
        vs = c.streams.video[0]
        frames = [f for f in c.decode(video=0)]
        assert len(frames) == 5 and (vs.width, vs.height) == (32, 32)
        assert c.streams.audio, "the clip has no audio track"
        rate = c.streams.audio[0].rate
        c.seek(0)
        samples = sum(f.samples for f in c.decode(audio=0))
    # MMAudio's 16 kHz codec: 512 samples per audio latent (31.25 latents/s), 8 latents generated.
    assert rate == 16000, rate
    assert abs(samples - TINY_WIDGETS["5.audio_length"] * 512) <= 1024, samples  # AAC frames: 1024 samples


def _to_wan_layout(sd: dict) -> dict:
    """diffusers names -> Wan2.2_VAE.pth names (restated independently of the loader's table)."""
    import re

    out = {}
    for k, v in sd.items():
        k2 = k
        for a, b in ((".norm1.", ".residual.0."), (".conv1.", ".residual.2."), (".norm2.", ".residual.3."),
                     (".conv2.", ".residual.6."), (".conv_shortcut.", ".shortcut.")):
            if ".resnets." in k2:
                k2 = k2.replace(a, b)
        k2 = re.sub(r"^encoder\.down_blocks\.(\d+)\.downsampler\.", r"encoder.downsamples.\1.downsamples.9.", k2)
        k2 = re.sub(r"^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.", r"encoder.downsamples.\1.downsamples.\2.", k2)
        k2 = re.sub(r"^decoder\.up_blocks\.(\d+)\.upsampler\.", r"decoder.upsamples.\1.upsamples.9.", k2)
        k2 = re.sub(r"^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.", r"decoder.upsamples.\1.upsamples.\2.", k2)
        k2 = re.sub(r"^(en|de)coder\.mid_block\.resnets\.0\.", r"\1coder.middle.0.", k2)
        k2 = re.sub(r"^(en|de)coder\.mid_block\.attentions\.0\.", r"\1coder.middle.1.", k2)
        k2 = re.sub(r"^(en|de)coder\.mid_block\.resnets\.1\.", r"\1coder.middle.2.", k2)
        k2 = re.sub(r"^(en|de)coder\.conv_in\.", r"\1coder.conv1.", k2)
        k2 = re.sub(r"^(en|de)coder\.norm_out\.", r"\1coder.head.0.", k2)
        k2 = re.sub(r"^(en|de)coder\.conv_out\.", r"\1coder.head.2.", k2)
        k2 = re.sub(r"^quant_conv\.", "conv1.", k2)
        k2 = re.sub(r"^post_quant_conv\.", "conv2.", k2)
        out[k2] = v
    return out


def test_wan_vae_loads_wans_own_layout(models_dir, tmp_path):
    sd = load_file(str(models_dir / "vae/wan2.2_vae.safetensors"))
    wan = _to_wan_layout(sd)
    assert "decoder.conv1.weight" in wan and not any(k.startswith("decoder.up_blocks") for k in wan)
    torch.save(wan, tmp_path / "Wan2.2_VAE.pth")
    a = load_wan_vae(models_dir / "vae/wan2.2_vae.safetensors")
    b = load_wan_vae(tmp_path / "Wan2.2_VAE.pth")  # no metadata: sizes read from the weights
    z = torch.randn(1, 48, 2, 2, 2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(decode_video(a, z), decode_video(b, z))


def test_long_clip_nodes_join_chunks(models_dir):
    ovi = nodes.load_ovi_model("model.safetensors", "fp32", "none", 0, 2, 16)
    cond = {"positive": torch.randn(3, 24), "video_negative": torch.randn(2, 24), "audio_negative": torch.randn(2, 24)}
    video, audio = nodes.OviLongSampler.execute(2, ovi, cond, 32, 32, 2, 9, 2, 5.0, 4.0, 3.0, 1, 7, True,
                                                 size_mode="exact").args
    assert video["samples"].shape == (2, 48, 2, 2, 2) and audio["samples"].shape == (2, 20, 9)
    assert torch.equal(video["samples"][1, :, 0], video["samples"][0, :, -1])
    vae = nodes.load_video_vae("wan2.2_vae.safetensors", "fp32")
    frames = nodes.wan_decode(vae, video)
    assert frames.shape == (5 + 4, 32, 32, 3)  # the second chunk's first frame repeats the first's last
    wav = torch.stack([torch.zeros(1, 90), torch.ones(1, 90)])  # 10 samples per latent frame
    joined = nodes.stitch_ovi_audio({"waveform": wav, "sample_rate": 16000}, audio)
    n = audio["ovi_audio_overlap"] * 10
    assert n > 0 and joined["waveform"].shape == (1, 1, 180 - n) and joined["sample_rate"] == 16000
    # linear crossfade sampled at the centres of the n overlapping samples (models/common/chunking.py)
    assert float(joined["waveform"][0, 0, 90 - n]) == pytest.approx(0.5 / n) and joined["waveform"][0, 0, 90] == 1


def test_long_clip_with_the_vae_starts_each_chunk_from_the_last_decoded_frame(models_dir):
    from soundstage.models.ovi.video_vae import decode_video, encode_image

    ovi = nodes.load_ovi_model("model.safetensors", "fp32", "none", 0, 2, 16)
    cond = {"positive": torch.randn(3, 24), "video_negative": torch.randn(2, 24), "audio_negative": torch.randn(2, 24)}
    vae = nodes.load_video_vae("wan2.2_vae.safetensors", "fp32")
    video, _ = nodes.OviLongSampler.execute(2, ovi, cond, 32, 32, 2, 9, 2, 5.0, 4.0, 3.0, 1, 7, True,
                                            size_mode="exact", vae=vae).args
    first, second = video["samples"]
    with torch.no_grad():
        want = encode_image(vae.module, decode_video(vae.module, first[None])[:, -1])[0]
    torch.testing.assert_close(second[:, :1], want, atol=1e-5, rtol=0)
    assert not torch.allclose(second[:, :1], first[:, -1:], atol=1e-3)  # not the carried 4-frame latent


def test_long_clip_seconds_gives_exactly_that_length(models_dir):
    ovi = nodes.load_ovi_model("model.safetensors", "fp32", "none", 0, 2, 16)
    cond = {"positive": torch.randn(3, 24), "video_negative": torch.randn(2, 24), "audio_negative": torch.randn(2, 24)}
    seconds = 0.5  # 12 frames at 24 fps; chunks of 2 latent frames add 4 frames each after a first of 5
    video, audio = nodes.OviLongSampler.execute(1, ovi, cond, 32, 32, 2, 9, 1, 5.0, 4.0, 3.0, 1, 7, True,
                                                seconds=seconds, size_mode="exact").args
    assert video["samples"].shape[0] == 3  # ceil((12 - 1) / 4), whatever 'chunks' says
    frames = nodes.wan_decode(nodes.load_video_vae("wan2.2_vae.safetensors", "fp32"), video)
    assert frames.shape[0] == round(seconds * 24)
    wav = torch.rand(3, 1, 90)
    joined = nodes.stitch_ovi_audio({"waveform": wav, "sample_rate": 300}, audio)
    assert joined["waveform"].shape[-1] == round(seconds * 300)


def test_release_is_told_by_file_name_or_option(models_dir):
    assert nodes.load_ovi_model("model.safetensors", "fp32", "none", 0, 2, 16).variant == "720x720_5s"
    assert nodes.load_ovi_model("model_960x960.safetensors", "fp32", "none", 0, 2, 16).variant == "960x960_5s"
    ten = nodes.load_ovi_model("model_960x960_10s.safetensors", "fp32", "none", 0, 2, 16)
    assert ten.variant == "960x960_10s"
    named = nodes.load_ovi_model("model.safetensors", "fp32", "none", 0, 2, 16, variant="960x960_10s")
    assert named.variant == "960x960_10s"  # an explicit choice wins over the name
    with pytest.raises(ValueError, match="Load Ovi Model: input 'model_variant'"):
        nodes.load_ovi_model("model.safetensors", "fp32", "none", 0, 2, 16, variant="1080p")


def test_text_encode_rewrites_the_caption_for_the_loaded_release(models_dir):
    enc = nodes.load_text_encoder("umt5-xxl-enc-bf16.safetensors", "umt5-xxl/tokenizer.json", 16)
    ten = nodes.load_ovi_model("model_960x960_10s.safetensors", "fp32", "none", 0, 2, 16)
    old = nodes.load_ovi_model("model.safetensors", "fp32", "none", 0, 2, 16)
    text = "w1 w2 <AUDCAP>w3 w4<ENDAUDCAP>"
    cond = nodes.encode_ovi_text(enc, text, "w4", "w5", ten)
    assert cond["prompt"] == "w1 w2 Audio: w3 w4"
    assert torch.equal(cond["positive"], nodes.encode_ovi_text(enc, "w1 w2 Audio: w3 w4", "w4", "w5")["positive"])
    assert nodes.encode_ovi_text(enc, "w1 Audio: w3", "w4", "w5", old)["prompt"] == "w1 <AUDCAP>w3<ENDAUDCAP>"
    # A caption in the other release's tags reaching the sampler is refused, naming the input.
    raw = nodes.encode_ovi_text(enc, text, "w4", "w5")
    with pytest.raises(ValueError, match="Ovi Sampler: input 'conditioning'.*Audio: ..."):
        nodes.ovi_sample(ten, raw, 32, 32, 2, 8, 1, 5.0, 4.0, 3.0, 1, 0, True)


def test_model_area_and_trained_lengths_follow_the_release(models_dir, monkeypatch):
    cond = {"positive": torch.randn(3, 24), "video_negative": torch.randn(2, 24), "audio_negative": torch.randn(2, 24)}
    seen = {}

    def fake_sample(model, c, *, latent_frames, latent_height, latent_width, audio_length, **kw):
        seen.update(f=latent_frames, h=latent_height, w=latent_width, a=audio_length)
        return torch.zeros(48, latent_frames, latent_height, latent_width), torch.zeros(audio_length, 20)

    monkeypatch.setattr(nodes.pipeline, "sample_ovi", fake_sample)
    ten = nodes.load_ovi_model("model_960x960_10s.safetensors", "fp32", "none", 0, 2, 16)
    nodes.ovi_sample(ten, cond, 64, 32, 0, 0, 1, 5.0, 4.0, 3.0, 1, 0, True, size_mode="model_area")
    # 2:1 aspect scaled to 960*960 pixels -> 1344 x 672 (snapped to 32), /16 for the latent; 10 s = 61 / 314.
    h, w = seen["h"] * 16, seen["w"] * 16
    assert (seen["f"], seen["a"]) == (61, 314) and w == 2 * h and abs(h * w - 960 * 960) < 0.03 * 960 * 960
    old = nodes.load_ovi_model("model.safetensors", "fp32", "none", 0, 2, 16)
    nodes.ovi_sample(old, cond, 704, 704, 0, 0, 1, 5.0, 4.0, 3.0, 1, 0, True, size_mode="model_area")
    assert (seen["f"], seen["a"], seen["h"] * 16, seen["w"] * 16) == (31, 157, 704, 704)
    nodes.ovi_sample(ten, cond, 64, 32, 5, 9, 1, 5.0, 4.0, 3.0, 1, 0, True, size_mode="exact")
    assert (seen["f"], seen["a"], seen["h"] * 16, seen["w"] * 16) == (5, 9, 32, 64)


def test_ten_second_workflow_runs_headless_at_tiny_size(models_dir, tmp_path):
    runner_mod = _runner({"CreateVideo", "SaveVideo"})
    import av

    inp, out = runner_folders(tmp_path)
    # Tiny model and frame size, the release's own lengths (61 video / 314 audio latents, from the workflow).
    overrides = {k: v for k, v in TINY_WIDGETS.items() if k not in ("5.latent_frames", "5.audio_length")}
    overrides["5.steps"] = 1
    wf = json.loads((REPO / "workflows" / "t2av_ovi_10s.json").read_text())
    sampler = next(n for n in wf["nodes"] if n["id"] == 5)
    frames_lat, audio_lat = sampler["widgets_values"][2:4]
    r = runner_mod.Runner(input_dir=inp, output_dir=out, models_dir=models_dir)
    r.run(REPO / "workflows" / "t2av_ovi_10s.json", overrides=overrides)
    files = sorted(p for p in out.rglob("*") if p.suffix in (".mp4", ".mkv", ".webm", ".mov"))
    assert files, "SaveVideo wrote no file"
    with av.open(str(files[0])) as c:
        vs = c.streams.video[0]
        frames = sum(1 for _ in c.decode(video=0))
        rate = float(vs.average_rate)
        c.seek(0)
        samples = sum(f.samples for f in c.decode(audio=0))
    assert frames == (frames_lat - 1) * 4 + 1 and (vs.width, vs.height) == (32, 32)
    assert abs(frames / rate - 10.0) < 0.1  # 241 frames at 24 fps
    assert abs(samples - audio_lat * 512) <= 1024, samples
