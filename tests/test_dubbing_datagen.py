"""JUST-DUB-IT data generation: effective latent masks and masked inpainting."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from soundstage.training.just_dub_it.datagen import (
    effective_latent_mask,
    inpainting_states,
    language_switch_prompt,
    lip_masks,
    split_frames,
)
from soundstage.models.just_dub_it.sampler import euler_sample
from soundstage.models.just_dub_it.schedule import ltx2_sigmas


def _blurry_encoder(frames):
    # Stand-in VAE: 8x8 patches, but with a 3x3 receptive field over neighbouring patches.
    x = F.avg_pool2d(frames.mean(1, keepdim=True), 8)  # [F, 1, h, w]
    x = F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
    return x.permute(1, 0, 2, 3).unsqueeze(0).repeat(1, 4, 1, 1, 1)  # [1, 4, F, h, w]


def test_effective_mask_covers_the_spread_not_just_the_patch():
    frames = torch.zeros(2, 3, 64, 64)
    frames[:, :, 24:32, 24:32] = 1.0  # exactly one 8x8 patch (latent 3,3)
    naive = F.avg_pool2d(frames[:, :1], 8)[:, 0] > 0
    mask = effective_latent_mask(_blurry_encoder, frames, tau=0.05)
    assert mask.shape == (2, 8, 8) and naive.sum() == 2
    assert mask.sum() == 2 * 9  # the 3x3 neighbourhood the encoder leaks into
    assert mask[:, 2:5, 2:5].all() and not mask[:, 6:, :].any()
    assert effective_latent_mask(_blurry_encoder, torch.zeros(2, 3, 64, 64)).sum() == 0


def test_inpainting_keeps_unmasked_tokens_and_regenerates_audio():
    g = torch.Generator().manual_seed(0)
    video, audio = torch.randn(1, 4, 2, 2, 2, generator=g), torch.randn(1, 2, 3, 4, generator=g)
    mask = torch.zeros(2, 2, 2, dtype=torch.bool)
    mask[:, 0, 0] = True
    v, a = inpainting_states(video, audio, mask, 25.0, torch.randn(1, 8, 4, generator=g), torch.randn(1, 3, 8, generator=g))
    assert v.denoise_mask.sum() == 2 and a.denoise_mask.sum() == 3
    target_v, target_a = torch.full((1, 8, 4), 7.0), torch.full((1, 3, 8), -3.0)
    out_v, out_a = euler_sample([v, a], ltx2_sigmas(4), lambda lat, s: [target_v, target_a])
    keep = ~mask.flatten()
    torch.testing.assert_close(out_v.latent[0, keep], v.clean[0, keep])
    torch.testing.assert_close(out_v.latent[0, ~keep], target_v[0, ~keep], rtol=0, atol=1e-5)
    torch.testing.assert_close(out_a.latent, target_a, rtol=0, atol=1e-5)


def test_prompt_and_halves():
    p = language_switch_prompt("A chef talks in a kitchen.", "English", "Hello there.", "French", "Bonjour.")
    assert "first says in English: \"Hello there.\"" in p and "switches to French and says: \"Bonjour.\"" in p
    first, second = split_frames(121)
    assert (first.stop - first.start - 1) % 8 == 0 and second.stop == 121 and first.stop <= second.start + 1
    with pytest.raises(ValueError):
        split_frames(9)


def test_lip_masks_names_the_optional_dependency():
    try:
        import mediapipe  # noqa: F401
    except ImportError:
        from soundstage.metrics.asr import MetricUnavailable

        with pytest.raises(MetricUnavailable, match="mediapipe==0.10.21"):
            lip_masks(torch.zeros(1, 32, 32, 3))
    else:
        assert lip_masks(torch.zeros(1, 32, 32, 3)).sum() == 0  # no face, no mask


# ---- lip augmentation, merge, partial audio ---------------------------------------------------

import json  # noqa: E402
import shutil  # noqa: E402

import numpy as np  # noqa: E402

from soundstage.training.just_dub_it.datagen import (  # noqa: E402
    InpaintResult,
    audio_span_mask,
    dialogue_prompt,
    hold_missing_masks,
    lip_augmentation_prompt,
    merge_passes,
)
from soundstage.models.just_dub_it.in_context import audio_positions  # noqa: E402


def test_lip_augmentation_prompt_spells_seeded_letters():
    p = lip_augmentation_prompt("A man in a kitchen.", seed=3, letters=4)
    spelled = p.split('"')[1]
    assert p.startswith("A man in a kitchen.") and len(spelled.split("..")) == 4
    assert all(len(c) == 1 and c.isupper() for c in spelled.split(".."))
    assert p == lip_augmentation_prompt("A man in a kitchen.", seed=3, letters=4)
    assert len({lip_augmentation_prompt("", seed=s) for s in range(6)}) > 1
    with pytest.raises(ValueError):
        lip_augmentation_prompt("", seed=0, letters=0)
    assert dialogue_prompt("Scene.", "French", " Bonjour. ") == 'Scene. The speaker says in French: "Bonjour."'


def test_merge_takes_audio_of_the_translation_and_video_of_the_augmentation():
    translated = InpaintResult(torch.zeros(1, 4, 2, 1, 1), torch.zeros(1, 2, 3, 4), "say it in French")
    augmented = InpaintResult(torch.ones(1, 4, 2, 1, 1), torch.ones(1, 2, 3, 4), "spell A..B")
    merged = merge_passes(translated, augmented)
    assert merged.video.eq(1).all() and merged.audio.eq(0).all()
    assert (merged.video_prompt, merged.audio_prompt) == ("spell A..B", "say it in French")
    with pytest.raises(ValueError, match="same half"):
        merge_passes(translated, InpaintResult(torch.ones(1, 4, 3, 1, 1), torch.ones(1, 2, 3, 4), "x"))


def test_audio_span_mask_and_half_audio_inpainting():
    frames = 30
    mask = audio_span_mask(frames, 0.1, 0.5)
    bounds = audio_positions(frames)[0, 0]
    inside = (bounds[:, 1] > 0.1) & (bounds[:, 0] < 0.5)
    assert mask.equal(inside) and 0 < mask.sum() < frames and not mask[0] and not mask[-1]
    g = torch.Generator().manual_seed(1)
    video, audio = torch.randn(1, 4, 2, 1, 1, generator=g), torch.randn(1, 2, frames, 4, generator=g)
    v, a = inpainting_states(video, audio, torch.zeros(2, 1, 1, dtype=torch.bool), 25.0,
                             torch.randn(1, 2, 4, generator=g), torch.randn(1, frames, 8, generator=g), audio_mask=mask)
    target = torch.full((1, frames, 8), 5.0)
    _, out_a = euler_sample([v, a], ltx2_sigmas(3), lambda lat, s: [torch.zeros(1, 2, 4), target])
    torch.testing.assert_close(out_a.latent[0, ~mask], a.clean[0, ~mask])  # the other half keeps its audio
    torch.testing.assert_close(out_a.latent[0, mask], target[0, mask], rtol=0, atol=1e-5)


def test_missing_lip_frames_take_the_nearest_mask():
    masks = torch.zeros(5, 4, 4)
    masks[1, 0, 0] = 1
    masks[4, 3, 3] = 1
    held = hold_missing_masks(masks)
    assert held[0, 0, 0] == 1 and held[2, 0, 0] == 1 and held[3, 3, 3] == 1 and held[4].equal(masks[4])
    assert held.flatten(1).sum(1).tolist() == [1, 1, 1, 1, 1]
    assert hold_missing_masks(torch.zeros(3, 2, 2)).sum() == 0


def test_halves_never_cross_a_known_switch():
    from soundstage.training.just_dub_it.datagen_pairs import half_slices

    first, second = half_slices(145, 75)
    assert first == slice(0, 73) and second == slice(75, 140)
    assert half_slices(121, None) == tuple(split_frames(121))
    with pytest.raises(ValueError):
        half_slices(33, 30)


def test_synthworld_lip_masks_find_the_drawn_mouth():
    from soundstage.training.just_dub_it.datagen_folder import synthworld_lip_masks
    from soundstage.synthworld import render

    canvas = render.Canvas(64, 64)
    frame = render.draw_frame(canvas, mood=0.5, openness=1.0, head_dx=0.0, head_dy=0.0, profile=False, balls=[],
                              light_on=False)
    frames = torch.from_numpy(np.asarray(frame, np.float32) / 255.0)[None]
    mask = synthworld_lip_masks(frames, dilate=0)[0]
    ys, xs = mask.nonzero(as_tuple=True)
    # synthworld.render: mouth centre (0.3 w, 0.42 h + 0.45 * 0.2 s)
    assert mask.sum() > 10 and abs(xs.float().mean() - 0.3 * 64) < 2 and abs(ys.float().mean() - (0.42 + 0.09) * 64) < 2
    assert synthworld_lip_masks(frames, dilate=2)[0].sum() > mask.sum()


# ---- the tiny LTX-2 end to end ----------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    from soundstage.testing.just_dub_it import write_tiny_gemma, write_tiny_single_file

    root = tmp_path_factory.mktemp("ltx2")
    return write_tiny_single_file(root / "ltx2_tiny.safetensors", seed=4), write_tiny_gemma(root / "gemma")


@pytest.fixture(scope="module")
def tiny_models(tiny_files):
    from soundstage.training.just_dub_it.datagen_folder import load_datagen_models

    return load_datagen_models(*tiny_files, max_tokens=16)


def _tone_clip(frames=33, size=64, fps=25.0):
    from soundstage.training.just_dub_it.datagen_pairs import SwitchClip, SwitchHalf

    g = torch.Generator().manual_seed(0)
    t = torch.arange(int(frames / fps * 16000)) / 16000
    wav = (0.3 * torch.sin(2 * torch.pi * 220 * t) + 0.01 * torch.randn(t.shape, generator=g))[None]
    halves = (SwitchHalf("English", "hello world", "bonjour le monde"), SwitchHalf("French", "bonjour le monde", "hello world"))
    return SwitchClip(torch.rand(frames, size, size, 3, generator=g), wav, 16000, fps, "A woman talks.", halves)


def _box_lips(frames):
    m = torch.zeros(frames.shape[:3])
    m[:, 40:52, 20:44] = 1
    return m


def test_inpaint_regenerates_only_the_masked_tokens(tiny_models):
    from soundstage.training.just_dub_it.datagen_pairs import DatagenConfig, inpaint

    g = torch.Generator().manual_seed(2)
    video, audio = torch.randn(1, 128, 3, 2, 2, generator=g), torch.randn(1, 8, 20, 16, generator=g)
    vmask = torch.zeros(3, 2, 2, dtype=torch.bool)
    vmask[:2, 1, :] = True
    amask = audio_span_mask(20, 0.0, 0.1)
    steps = []
    v, a = inpaint(tiny_models, video, audio, vmask, amask, 25.0, "she says hello", DatagenConfig(steps=3, cfg=3.0),
                   seed=0, callback=lambda i, n: steps.append((i, n)))
    assert steps == [(1, 3), (2, 3), (3, 3)]
    assert torch.equal(v[:, :, ~vmask], video[:, :, ~vmask]) and not torch.allclose(v[:, :, vmask], video[:, :, vmask])
    assert torch.equal(a[:, :, ~amask], audio[:, :, ~amask]) and not torch.allclose(a[:, :, amask], audio[:, :, amask])


def test_build_pairs_from_a_switch_clip(tiny_models, tmp_path):
    from soundstage.training.just_dub_it.datagen_pairs import DatagenConfig, NoLipsFound, build_pair, build_pairs, save_pair
    from soundstage.training.just_dub_it.train import LatentPairs

    clip = _tone_clip()
    cfg = DatagenConfig(steps=2, cfg=1.0, tau=0.01)
    calls = []
    pairs = build_pairs(tiny_models, clip, cfg, lip_mask_fn=_box_lips, callback=lambda i, n: calls.append((i, n)))
    assert calls[-1] == (8, 8) and len(calls) == 8  # 2 halves x 2 passes x 2 steps
    for half, pair in enumerate(pairs):
        t = pair.tensors
        assert t["ref_video"].shape == t["target_video"].shape and t["ref_audio"].shape == t["target_audio"].shape
        assert t["fg_mask"].shape == (1, *t["target_video"].shape[2:]) and t["fg_mask"].sum() > 0
        assert not torch.allclose(t["ref_audio"], t["target_audio"], atol=1e-3)  # the audio was re-spoken
        meta = pair.meta
        this, other = clip.halves[half], clip.halves[1 - half]
        assert meta["target_language"] == this.language and this.line in meta["caption"]
        assert other.language in meta["context_audio_prompt"] and this.translation in meta["context_audio_prompt"]
        assert ".." in meta["context_video_prompt"] and meta["masked_video_tokens"] > 0
        frames = pair.frames
        assert frames["context"].dtype == torch.uint8 and frames["context"].shape == frames["target"].shape
        assert frames["target"].shape[0] == meta["frames"][1] - meta["frames"][0]
        save_pair(pair, tmp_path / f"p{half}.safetensors")
    assert pairs[0].meta["frames"] == [0, 17] and pairs[1].meta["frames"] == [16, 33]
    loaded = list(LatentPairs(tmp_path))
    assert len(loaded) == 2 and torch.equal(loaded[0]["ref_audio"], pairs[0].tensors["ref_audio"])
    with pytest.raises(NoLipsFound):
        build_pair(tiny_models, clip, 0, cfg, lip_mask_fn=lambda f: torch.zeros(f.shape[:3]), require_lips=True)


def test_synthworld_folder_to_pairs_to_lora(tiny_files, tmp_path):
    """`python -m soundstage synth` -> `dubbing-data` -> `train dubbing-lora`, all with the tiny LTX-2."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed (apt-get install espeak-ng)")
    from safetensors import safe_open

    from soundstage.cli import main
    from soundstage.synthworld import generate_dataset

    ckpt, gemma = tiny_files
    generate_dataset(tmp_path / "synth", 2, seconds=1.0, size=64)
    pairs = tmp_path / "pairs"
    try:
        import mediapipe  # noqa: F401
        quality = ["--quality"]
    except ImportError:
        quality = []
    assert main(["dubbing-data", "--clips", str(tmp_path / "synth"), "--ckpt", str(ckpt), "--text-encoder", str(gemma),
                 "--out", str(pairs), "--steps", "2", "--max-tokens", "16", "--tau", "0.01", "--precision", "fp32",
                 *quality]) == 0
    files = sorted(pairs.glob("*.safetensors"))
    assert [f.name for f in files] == ["pair0000_half0.safetensors", "pair0000_half1.safetensors"]
    index = json.loads((pairs / "index.json").read_text())["pairs"]
    assert [p["target_language"] for p in index] == ["English", "French"]
    if quality:
        assert all(isinstance(p["quality"]["frames_scored"], int) for p in index)
    clips = json.loads((tmp_path / "synth" / "manifest.json").read_text())["clips"]
    # The English half is re-spoken with the French clip's line: synthworld pairs are translations.
    assert f'in French: "{clips[1]["transcript"]}"' in index[0]["context_audio_prompt"]
    assert f'in English: "{clips[0]["transcript"]}"' in index[1]["context_audio_prompt"]
    with safe_open(str(files[0]), "pt") as f:
        assert json.loads(f.metadata()["soundstage_pair"])["clip"] == "pair0000"
        assert f.get_tensor("fg_mask").sum() > 0
    out = tmp_path / "run"
    assert main(["train", "dubbing-lora", "--ckpt", str(ckpt), "--data", str(pairs), "--out", str(out), "--steps", "2",
                 "--rank", "4", "--mixed-precision", "no", "--save-every", "2"]) == 0
    with safe_open(str(out / "dubbing_lora.safetensors"), "pt") as f:
        keys = list(f.keys())
        assert keys and all(k.startswith("diffusion_model.") for k in keys)
        assert max(f.get_tensor(k).abs().max() for k in keys if ".lora_B." in k) > 0  # trained on the built pairs


def test_sidecar_clips_use_mediapipe_and_skip_halves_without_lips(tiny_models, tmp_path):
    pytest.importorskip("mediapipe")
    from media_factory import make_video

    from soundstage.training.just_dub_it.datagen_folder import build_dataset, sidecar_switch_clips
    from soundstage.training.just_dub_it.datagen_pairs import DatagenConfig

    make_video(tmp_path / "talk.mp4", seconds=1.0, fps=25, size=(64, 64), audio="tone", sample_rate=16000)
    spec = {"scene": "A chef talks.", "switch_frame": 12, "halves": [
        {"language": "English", "line": "hello", "translation": "bonjour"},
        {"language": "French", "line": "bonjour", "translation": "hello"}]}
    (tmp_path / "talk.switch.json").write_text(json.dumps(spec))
    clip = next(sidecar_switch_clips(tmp_path))
    assert clip.frames.shape == (25, 64, 64, 3) and clip.switch_frame == 12 and clip.halves[1].language == "French"
    assert clip.sample_rate == 16000 and abs(clip.waveform.shape[-1] / 16000 - 1.0) < 0.05
    logs = []
    with pytest.raises(FileNotFoundError, match="no lips found"):  # flat colour frames: the face mesh finds none
        build_dataset(tmp_path, tmp_path / "pairs", tiny_models, DatagenConfig(steps=1), log=logs.append)
    assert len(logs) == 2 and all("no lips found" in line for line in logs)


def test_quality_diversity_follows_the_paper_equations():
    from soundstage.training.just_dub_it.datagen_quality import quality_diversity

    g = np.random.default_rng(0)
    target = g.normal(size=(4, 20, 2)) * 10
    context = target + np.array([3.0, 4.0])  # every landmark 5 px away
    mar = np.array([0.1, 0.3, 0.1, 0.3])
    q = quality_diversity(context, target, mar)
    assert q["lmd"] == pytest.approx(5.0) and q["mar_diversity"] == pytest.approx(0.1) and q["qd"] == pytest.approx(0.5)
    context[1] = np.nan  # no face in frame 1: left out of both terms
    q = quality_diversity(context, target, mar)
    assert q["frames_scored"] == 3 and q["mar_diversity"] == pytest.approx(np.std([0.1, 0.1, 0.3]))
    copied = quality_diversity(target, target, mar)
    assert copied["qd"] == 0.0  # copy-pasted lips score nothing
    assert np.isnan(quality_diversity(context * np.nan, target, mar)["qd"])


def test_pair_quality_without_a_face_is_unscored():
    pytest.importorskip("mediapipe")
    from soundstage.training.just_dub_it.datagen_quality import pair_quality

    frames = torch.full((3, 64, 64, 3), 128, dtype=torch.uint8)
    q = pair_quality(frames, frames)
    assert q["frames_scored"] == 0 and np.isnan(q["qd"])
