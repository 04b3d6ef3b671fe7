"""LTX-2 transformer loading: config from metadata, the real checkpoint's key layout, LoRA files."""
from __future__ import annotations

import json

import pytest
import torch

from soundstage.models.common.checkpoint import CheckpointError, compare_keys, meta_device, model_shapes
from soundstage.models.just_dub_it.config import diffusers_transformer_kwargs, native_transformer_config
from soundstage.models.just_dub_it.lora import lora_from_state_dict, loras_merged, merge_lora
from soundstage.testing.just_dub_it import TINY_NATIVE_CONFIG, random_native_checkpoint
from soundstage.models.just_dub_it.transformer import build_transformer, load_transformer, transformer_state_dict


@pytest.fixture(scope="module")
def tiny():
    sd, meta = random_native_checkpoint(seed=1)
    return load_transformer(sd, meta)


def test_config_comes_from_metadata_not_class_defaults():
    cfg = native_transformer_config({"config": json.dumps({"transformer": TINY_NATIVE_CONFIG})})
    kw = diffusers_transformer_kwargs(cfg)
    # LTX-2.0 values that differ from the diffusers class defaults.
    assert kw["rope_type"] == "split" and kw["rope_double_precision"] is True
    assert kw["cross_attn_timestep_scale_multiplier"] == 1000
    assert kw["num_layers"] == TINY_NATIVE_CONFIG["num_layers"]
    bad = dict(TINY_NATIVE_CONFIG, qk_norm="layer_norm")
    with pytest.raises(CheckpointError, match="qk_norm"):
        diffusers_transformer_kwargs(bad)


def test_every_manifest_key_maps_with_matching_shape(golden_dir):
    manifest = json.loads((golden_dir / "manifests" / "ltx2_transformer_single_file.json").read_text())
    kw = diffusers_transformer_kwargs(native_transformer_config({"config": json.dumps(manifest["config"])}))
    with meta_device():
        model = build_transformer(kw)
    keys = dict(manifest["keys"])
    keys.update(manifest.get("other_keys_in_single_file", {}).get("keys", {}))  # connectors: dropped by the loader
    sd = {k: torch.empty(v["shape"], device="meta") for k, v in keys.items()}
    converted = transformer_state_dict(sd)
    assert len(converted) == len(manifest["keys"])
    report = compare_keys(model_shapes(model), {k: tuple(v.shape) for k, v in converted.items()})
    assert report.ok, report.describe(10)


def test_strict_load_names_every_bad_key():
    sd, meta = random_native_checkpoint(seed=2)
    sd.pop("model.diffusion_model.proj_out.bias")
    sd["model.diffusion_model.transformer_blocks.0.attn1.to_q.weight"] = torch.zeros(3, 3)
    sd["model.diffusion_model.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as err:
        load_transformer(sd, meta)
    msg = str(err.value)
    assert "proj_out.bias" in msg and "transformer_blocks.0.attn1.to_q.weight" in msg and "extra.weight" in msg


def _lora_sd(model, rank=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for name in ("transformer_blocks.0.attn1.to_q", "transformer_blocks.1.ff.net.2", "transformer_blocks.0.audio_to_video_attn.to_out.0"):
        lin = model.transformer.get_submodule(name)
        sd[f"diffusion_model.{name}.lora_A.weight"] = torch.randn(rank, lin.in_features, generator=g)
        sd[f"diffusion_model.{name}.lora_B.weight"] = torch.randn(lin.out_features, rank, generator=g)
    return sd


def test_lora_merge_is_w_plus_strength_b_a_and_unloads(tiny):
    sd = _lora_sd(tiny)
    lora = lora_from_state_dict(sd)
    w = tiny.transformer.transformer_blocks[1].ff.net[2].weight
    before = w.clone()
    delta = sd["diffusion_model.transformer_blocks.1.ff.net.2.lora_B.weight"] @ sd["diffusion_model.transformer_blocks.1.ff.net.2.lora_A.weight"]
    with loras_merged(tiny.transformer, [(lora, 0.7)]):
        torch.testing.assert_close(w, before + 0.7 * delta)
    torch.testing.assert_close(w, before, rtol=0, atol=1e-6)


def test_kohya_alpha_scales_by_alpha_over_rank(tiny):
    sd = {k.replace("lora_A", "lora_down").replace("lora_B", "lora_up"): v for k, v in _lora_sd(tiny, rank=4).items()}
    sd["diffusion_model.transformer_blocks.0.attn1.to_q.alpha"] = torch.tensor(2.0)
    lora = lora_from_state_dict(sd)
    assert lora.pairs["transformer_blocks.0.attn1.to_q"].scale == 0.5
    assert lora.pairs["transformer_blocks.1.ff.net.2"].scale == 1.0


def test_lora_errors_name_the_problem(tiny):
    sd = _lora_sd(tiny)
    sd.pop("diffusion_model.transformer_blocks.0.attn1.to_q.lora_B.weight")
    with pytest.raises(CheckpointError, match="unpaired.*attn1.to_q"):
        lora_from_state_dict(sd)
    wrong = {"diffusion_model.transformer_blocks.0.attn1.to_q.lora_A.weight": torch.zeros(2, 5),
             "diffusion_model.transformer_blocks.0.attn1.to_q.lora_B.weight": torch.zeros(16, 2)}
    with pytest.raises(CheckpointError, match="does not fit"):
        merge_lora(tiny.transformer, lora_from_state_dict(wrong))
    missing = {"diffusion_model.transformer_blocks.9.attn1.to_q.lora_A.weight": torch.zeros(2, 16),
               "diffusion_model.transformer_blocks.9.attn1.to_q.lora_B.weight": torch.zeros(16, 2)}
    with pytest.raises(CheckpointError, match="transformer_blocks.9"):
        merge_lora(tiny.transformer, lora_from_state_dict(missing))
