"""Synchformer port: golden features, checkpoint layout, and the visual pre-processing helpers."""
from __future__ import annotations

import json

import pytest
import torch
from conftest import golden_files
from safetensors.torch import load_file

from soundstage.models.audiogen_omni.synchformer import Synchformer, SynchformerConfig, load_synchformer
from soundstage.models.audiogen_omni.preprocess import load_video_frames, sync_pixels
from soundstage.models.common.checkpoint import CheckpointError, compare_keys, meta_device, model_shapes


@pytest.mark.parametrize("path", golden_files("synchformer"), ids=lambda p: p.stem)
def test_golden_sync_features(golden_dir, path):
    d = load_file(str(path))
    meta = json.loads(path.with_suffix(".json").read_text())
    heads = meta["constructor"]["yaml_patch_for_tiny"]["VIT.NUM_HEADS"][1]  # not visible in any weight shape
    ckpt = {k: v for k, v in d.items() if not k.startswith(("input.", "output."))}
    ckpt["afeat_extractor.extra.weight"] = torch.zeros(2)  # other parts of the released file are ignored
    model = load_synchformer(ckpt, num_heads=heads)
    x = d["input.frames_uint8"].float() / 255
    x = (x - 0.5) / 0.5
    with torch.no_grad():
        got = {"sync_features": model.encode_video(x, segment_batch=1),
               "first_segment_features": model(x[:, None, 0:16])}
    for name, ref in ((k[7:], v) for k, v in d.items() if k.startswith("output.")):
        err = (got[name] - ref).abs().max().item()
        assert got[name].shape == ref.shape
        assert err <= meta["tolerance"][name], f"{name}: {err:.3g}"


def test_missing_key_is_named(golden_dir):
    path = golden_files("synchformer")[0]
    ckpt = {k: v for k, v in load_file(str(path)).items() if k.startswith("vfeat_extractor.")}
    ckpt.pop("vfeat_extractor.temp_embed")
    with pytest.raises(CheckpointError, match="temp_embed"):
        load_synchformer(ckpt, num_heads=2)


def test_manifest(golden_dir):
    manifest = json.loads((golden_dir / "manifests" / "synchformer.json").read_text())
    vit = manifest["config"]["VIT"]
    cfg = SynchformerConfig(embed_dim=vit["EMBED_DIM"], depth=vit["DEPTH"], num_heads=vit["NUM_HEADS"])
    with meta_device():
        model = Synchformer(cfg)
    expected = {k: tuple(v["shape"]) for k, v in manifest["keys"].items()}
    report = compare_keys(model_shapes(model), expected)
    assert report.ok, report.describe(limit=10)
    assert sum(v.numel() for v in model.state_dict().values()) == manifest["num_elements"]


def test_frame_sampling_and_sync_input():
    frames = torch.arange(50, dtype=torch.float32).view(50, 1, 1, 1).expand(50, 4, 6, 3) / 50
    v = load_video_frames(frames, 50.0, clip_size=None)
    # 1 s at 50 fps: 25 sync frames, every other one (exact at this rate: 0.04 accumulates below 2/50 here).
    assert v.sync_indices[:3] == [0, 2, 4] and len(v.sync_indices) == 25
    assert load_video_frames(frames, 50.0, 0.5, sync_size=None).clip_indices == [0, 7, 13, 19]  # int(8 * 0.5) slots
    x = sync_pixels(v.sync_frames)
    assert x.shape == (25, 3, 224, 224)
    assert x.min() >= -1 and x.max() <= 1
    k = v.sync_indices[3]
    assert torch.allclose(x[3, 0, 100, 100], torch.tensor(round(k / 50 * 255) / 255 * 2 - 1), atol=1e-6)
