"""Ovi fusion model: golden reference outputs, strict loading, and the full-size manifest."""
from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors.torch import load_file

from conftest import golden_files
from soundstage.models.common.checkpoint import CheckpointError, compare_keys, meta_device, model_shapes
from soundstage.models.ovi.fusion import FusionConfig, OviFusion
from soundstage.models.ovi.loader import config_from_state_dict, load_ovi_fusion
from soundstage.models.ovi.tower import audio_config, video_config


OVI_FILES = golden_files("ovi_fusion")
VARIANTS = {"t2v": {}, "i2v": {"first_frame_clean": True}, "slg": {"slg_layer": 1}}


def _case(path):
    meta = json.loads(path.with_suffix(".json").read_text())
    tensors = load_file(str(path))
    cfgs = meta["constructor"]["FusionModel(video_config, audio_config)"]
    vc, ac = cfgs["video_config"], cfgs["audio_config"]
    slg = re.search(r"slg_layer=(\d+)", meta.get("forward_call", {}).get("variants", {}).get("slg", ""))
    kw = dict(num_heads=vc["num_heads"], text_len=vc["text_len"], eps=vc.get("eps", 1e-6),
              audio_rope_scale=ac.get("temporal_rope_scaling_factor", 0.19676))
    return meta, tensors, kw, int(slg.group(1)) if slg else 1


@pytest.fixture(scope="module", params=OVI_FILES, ids=lambda p: p.stem)
def golden(request):
    return _case(request.param)


def _forward(model, t, variant, slg_layer=1):
    kw = dict(VARIANTS[variant])
    if variant == "slg":
        kw["slg_layer"] = slg_layer
    with torch.no_grad():
        v, a = model(t["input.vid"][None], t["input.audio"][None], t["input.t"],
                     t["input.vid_context"][None], t["input.audio_context"][None], **kw)
    return v[0], a[0]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_float32_matches_fp64_reference(golden_dir, golden, variant):
    meta, t, kw, slg = golden
    tol = meta["tolerance"]["vs_fp64_outputs_for_fp32_impl"]
    model = load_ovi_fusion(t, **kw)
    v, a = _forward(model, t, variant, slg)
    assert v.shape == t[f"output.{variant}.video_fp64"].shape
    assert (v - t[f"output.{variant}.video_fp64"]).abs().max().item() <= tol
    assert (a - t[f"output.{variant}.audio_fp64"]).abs().max().item() <= tol


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_bf16_matches_bf16_reference(golden_dir, golden, variant):
    meta, t, kw, slg = golden
    tol = meta["tolerance"]["vs_bf16_reference_outputs"]
    model = load_ovi_fusion(t, dtype=torch.bfloat16, **kw)
    assert model.video_model.blocks[0].ffn[0].weight.dtype == torch.bfloat16
    v, a = _forward(model, t, variant, slg)
    assert (v - t[f"output.{variant}.video"]).abs().max().item() <= tol
    assert (a - t[f"output.{variant}.audio"]).abs().max().item() <= tol


def test_variants_differ_and_batched_slg_rows(golden_dir, golden):
    meta, t, kw, slg = golden
    model = load_ovi_fusion(t, **kw)
    outs = {k: _forward(model, t, k, slg) for k in VARIANTS}
    assert (outs["t2v"][0] - outs["slg"][0]).abs().max() > 1e-3
    assert (outs["t2v"][0] - outs["i2v"][0]).abs().max() > 1e-3
    # One batched call: row 0 plain, row 1 with the SLG block skipped.
    rep = lambda x: torch.cat([x[None], x[None]])  # noqa: E731
    with torch.no_grad():
        v, a = model(rep(t["input.vid"]), rep(t["input.audio"]), t["input.t"], rep(t["input.vid_context"]),
                     rep(t["input.audio_context"]), slg_layer=slg, slg_rows=torch.tensor([False, True]))
    torch.testing.assert_close(v[0], outs["t2v"][0], atol=2e-5, rtol=0)
    torch.testing.assert_close(v[1], outs["slg"][0], atol=2e-5, rtol=0)
    torch.testing.assert_close(a[1], outs["slg"][1], atol=2e-5, rtol=0)


def test_strict_loader_names_bad_keys(golden_dir, golden):
    _, t, kw, _ = golden
    sd = {k: v for k, v in t.items() if k.startswith(("video_model.", "audio_model."))}
    sd.pop("audio_model.blocks.0.cross_attn.k_fusion.weight")
    sd["video_model.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as err:
        load_ovi_fusion(sd, **kw)
    assert "audio_model.blocks.0.cross_attn.k_fusion.weight" in str(err.value)
    assert "video_model.extra.weight" in str(err.value)


def test_full_size_manifest_maps_every_key(golden_dir):
    manifest = json.loads((golden_dir / "manifests" / "ovi_fusion_720x720_5s.json").read_text())
    shapes = {k: tuple(v["shape"]) for k, v in manifest["keys"].items()}
    cfg = config_from_state_dict({k: torch.empty(s, device="meta") for k, s in shapes.items()})
    ref = manifest["config"]
    assert cfg.video.num_heads == ref["video_config"]["num_heads"]
    assert cfg.video.text_dim == ref["text_dim"] and cfg.video.num_layers == ref["video_config"]["num_layers"]
    with meta_device():
        model = OviFusion(cfg)
    report = compare_keys(model_shapes(model), shapes)
    assert report.ok, report.describe(limit=20)
    assert sum(p.numel() for p in model.parameters()) == manifest["num_elements"]


def test_towers_must_match_in_depth():
    with pytest.raises(ValueError):
        FusionConfig(video=video_config(dim=64, num_heads=2, num_layers=2),
                     audio=audio_config(dim=64, num_heads=2, num_layers=3))
