"""DualDub curriculum training on generated media: manifest, caching, loss falls, resume, CLIP loading."""
from __future__ import annotations

import json
from dataclasses import asdict

import pytest
import torch
from media_factory import make_audio, make_video

from soundstage.models.common.codecs.wavtokenizer import WavTokenizer, WavTokenizerConfig
from soundstage.testing.dualdub import tiny_config
from soundstage.training.dualdub.data import read_audio, read_manifest, read_video, stage_entries
from soundstage.models.dualdub.io import load_dualdub
from soundstage.training.dualdub.train import train
from soundstage.models.dualdub.vision import encode_video, load_clip_vision

SECONDS = 0.5


def tiny_codec() -> WavTokenizer:
    torch.manual_seed(0)
    cfg = WavTokenizerConfig(dimension=8, n_filters=2, bins=16, backbone_dim=32, intermediate_dim=16, num_layers=1)
    return WavTokenizer(cfg).eval()


def tiny_clip_folder(path):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    cfg = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8, projection_dim=16)
    CLIPVisionModel(cfg).save_pretrained(str(path))
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("dualdub_data")
    entries = []
    kinds = ["tone", "clicks", "noise"]
    for i in range(6):
        e = {}
        task = ("v2a", "tts", "v2st")[i % 3]
        if task in ("v2a", "v2st"):
            e["video"] = make_video(root / f"v{i}.mp4", seconds=SECONDS, fps=12, size=(32, 32)).name
            e["background"] = make_audio(root / f"bg{i}.wav", seconds=SECONDS, kind=kinds[i % 3]).name
        if task in ("tts", "v2st"):
            e["speech"] = make_audio(root / f"sp{i}.wav", seconds=SECONDS, kind="speechlike").name
            e["reference"] = make_audio(root / f"ref{i}.wav", seconds=1.0, kind="speechlike").name
            e["transcript"] = ["hello world", "good morning", "see you soon"][i % 3]
        entries.append(e)
    (root / "manifest.json").write_text(json.dumps(entries))
    clip = tiny_clip_folder(root / "clip")
    return root, clip


def test_manifest_stages_keep_earlier_corpora(dataset):
    root, _ = dataset
    entries = read_manifest(root)
    tasks = {s: sorted({e["task"] for e in stage_entries(entries, s)}) for s in (1, 2, 3)}
    assert tasks == {1: ["v2a"], 2: ["tts", "v2a"], 3: ["tts", "v2a", "v2st"]}
    assert len(stage_entries(entries, 3)) == 6
    with pytest.raises(ValueError, match="stage"):
        stage_entries(entries, 4)


def test_media_readers_and_clip_one_frame_in_three(dataset):
    root, clip_dir = dataset
    wav = read_audio(root / "bg0.wav", 24000)
    assert abs(len(wav) - int(SECONDS * 24000)) <= 200 and wav.abs().max() > 0.05
    frames, fps = read_video(root / "v0.mp4")
    assert frames.shape[1:] == (32, 32, 3) and fps == pytest.approx(12)
    clip = load_clip_vision(clip_dir)
    feats, times = encode_video(clip, frames, fps, stride=3)
    assert feats.shape == (len(range(0, len(frames), 3)), 16)
    assert torch.allclose(times[:2], torch.tensor([0.0, 0.25]))
    # The same weights as one safetensors file in the HF layout load too (sizes read from the weights).
    from safetensors.torch import save_file

    single = root / "clip_single.safetensors"
    save_file({k: v.contiguous() for k, v in clip.model.state_dict().items()}, str(single))
    (root / "clip_single.json").write_text(json.dumps(clip.model.config.to_dict()))
    again = load_clip_vision(single)
    assert torch.allclose(encode_video(again, frames, fps)[0], feats, atol=1e-6)


def test_curriculum_stage_trains_loss_falls_and_resumes(dataset, tmp_path):
    root, clip_dir = dataset
    codec = tiny_codec()
    model_config = asdict(tiny_config())
    common = dict(codec=codec, clip=clip_dir, model_config=model_config, batch_size=3, lr=3e-3, vocab_size=280)
    # Stage 3 uses all three corpora; stop half-way, then resume to the end.
    out = tmp_path / "stage3"
    torch.manual_seed(0)  # a fresh model draws its initial weights from the global generator
    first = train(3, root, out, 30, stop_at=15, save_every=15, **common)
    assert first["step"] == 15 and first["checkpoint"] is None
    assert (out / "checkpoint-15" / "trainer.json").is_file()
    assert len(list((out / "feature_cache").glob("*.safetensors"))) == 6
    second = train(3, root, out, 30, save_every=15, **common)
    losses = [h["loss"] for h in second["history"]]
    assert second["history"][0]["step"] == 16 and second["step"] == 30
    start = sum(h["loss"] for h in first["history"][:5]) / 5
    end = sum(losses[-5:]) / 5
    assert end < 0.7 * start, (start, end)
    model, tok = load_dualdub(second["checkpoint"])
    assert model.config.token_rate == pytest.approx(75.0) and model.config.codebook_size == 16
    assert tok.encode("hello world").ids
    # The resumed run trained on the batches an uninterrupted one does: the same weights.
    torch.manual_seed(0)
    whole = train(3, root, tmp_path / "whole", 30, save_every=15, **common)
    assert [h["loss"] for h in whole["history"][15:]] == pytest.approx(losses, rel=1e-5)
    uninterrupted, _ = load_dualdub(whole["checkpoint"])
    for (name, a), b in zip(model.state_dict().items(), uninterrupted.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), name


def test_batches_skip_draws_what_the_skipped_batches_drew():
    """Skipping n batches leaves the order and the reference crops where n built batches leave them, across passes
    (a pass skipped whole included)."""
    from soundstage.training.dualdub.data import Batches
    from soundstage.training.trainer import _cycle  # how the trainer reads batches: pass after pass

    cfg = tiny_config()
    clips = [{"text_ids": torch.tensor([i + 1]), "speech_codes": torch.tensor([i % 16] * 4),
              "reference": torch.randn(cfg.codec_sample_rate // 2)} for i in range(5)]
    clips += [{"text_ids": torch.tensor([9]), "video": torch.zeros(2, cfg.video_dim), "video_times": torch.zeros(2),
               "audio_codes": torch.tensor([1, 2, 3])}]

    def first(batches, n):
        it, out = _cycle(batches), []
        for _ in range(n):
            out.append(next(it))
        return out

    whole = first(Batches(clips, cfg, 2, seed=7), 11)
    for skip in (1, 3, 6):  # 3 batches a pass: 3 and 6 skip whole passes
        resumed = first(Batches(clips, cfg, 2, seed=7, skip=skip), 11 - skip)
        for a, b in zip(whole[skip:], resumed):
            assert torch.equal(a["text_ids"], b["text_ids"]) and torch.equal(a["reference"], b["reference"])



def test_next_stage_starts_from_previous_and_cli(dataset, tmp_path):
    root, clip_dir = dataset
    codec = tiny_codec()
    shared = tmp_path / "features"  # one feature cache for both stages: stage 2 encodes only its new entries
    one = train(1, root, tmp_path / "s1", 3, codec=codec, clip=clip_dir, model_config=asdict(tiny_config()),
                batch_size=2, vocab_size=280, feature_cache=shared)
    cached = set(shared.glob("*.safetensors"))
    assert len(cached) == len(stage_entries(read_manifest(root), 1)) and not (tmp_path / "s1" / "feature_cache").exists()
    two = train(2, root, tmp_path / "s2", 2, codec=codec, clip=clip_dir, init_from=one["checkpoint"], batch_size=2,
                feature_cache=shared)
    added = set(shared.glob("*.safetensors")) - cached
    assert len(added) == sum(e["task"] == "tts" for e in stage_entries(read_manifest(root), 2))
    m1, t1 = load_dualdub(one["checkpoint"])
    m2, t2 = load_dualdub(two["checkpoint"])
    assert t1.get_vocab() == t2.get_vocab()
    assert m1.config == m2.config
    assert not torch.equal(m1.audio_head.weight, m2.audio_head.weight)
    # The CLI takes a codec file path.
    from safetensors.torch import save_file

    codec_file = tmp_path / "codec.safetensors"
    save_file({k: v.contiguous() for k, v in codec.state_dict().items()}, str(codec_file))
    flags = ["--stage", "1", "--data", str(root), "--out", str(tmp_path / "cli"), "--steps", "1",
             "--codec", str(codec_file), "--clip", str(clip_dir), "--init", str(one["checkpoint"])]
    from soundstage.cli import build_parser

    args = build_parser(["train", "dualdub", *flags]).parse_args(["train", "dualdub", *flags])
    assert args.func(args) == 0
    assert (tmp_path / "cli" / "dualdub_stage1.safetensors").is_file()
