"""LTX-2.3 transformer loading: version from the keys, the real 22B key layout mapped strictly,
fp8 releases, and the tiny 2.3 builder's forward in the DubIt layout."""
from __future__ import annotations

import json

import pytest
import torch

from soundstage.models.common.checkpoint import CheckpointError, compare_keys, meta_device, model_shapes
from soundstage.models.common.fp8 import Fp8Linear
from soundstage.models.just_dub_it.config import diffusers_transformer_kwargs, ltx_version, native_transformer_config
from soundstage.models.just_dub_it.dubit_layout import dubit_audio_state, dubit_video_state
from soundstage.models.just_dub_it.transformer import (
    build_transformer,
    load_transformer,
    transformer_keys,
    transformer_state_dict,
)
from soundstage.testing.just_dub_it import random_native_checkpoint
from soundstage.testing.ltx23 import TINY_LTX23_NATIVE_CONFIG, random_ltx23_checkpoint, tiny_ltx23_transformer

PREFIX = "model.diffusion_model."
ATTENTIONS = ("attn1", "attn2", "audio_attn1", "audio_attn2", "audio_to_video_attn", "video_to_audio_attn")


@pytest.fixture(scope="module")
def manifest(golden_dir):
    return json.loads((golden_dir / "manifests" / "ltx23_22b_single_file.json").read_text())


@pytest.fixture(scope="module")
def tiny():
    return tiny_ltx23_transformer(seed=3)


def _meta_tensors(keys: dict) -> dict:
    return {k: torch.empty(v["shape"], device="meta") for k, v in keys.items()}


def test_manifest_maps_strictly(manifest):
    # Every transformer key of the real 22B file is consumed with its shape, nothing is left over.
    keys = dict(manifest["keys"])
    keys.update(manifest["other_keys_in_single_file"]["keys"])  # connectors, projections, VAEs, vocoder
    assert ltx_version(transformer_keys(keys)) == "2.3"
    native = native_transformer_config({"config": json.dumps(manifest["config"])}, transformer_keys(keys))
    with meta_device():
        model = build_transformer(diffusers_transformer_kwargs(native))
    converted = transformer_state_dict(_meta_tensors(keys))
    assert len(converted) == manifest["num_tensors"]
    report = compare_keys(model_shapes(model), {k: tuple(v.shape) for k, v in converted.items()})
    assert report.ok, report.describe(10)
    assert sum(p.numel() for p in model.parameters()) == manifest["num_elements"]


def test_manifest_without_header_uses_the_22b_defaults(manifest):
    # A file whose header lost its config still builds the 22B transformer from its keys.
    native = native_transformer_config(None, manifest["keys"])
    with meta_device():
        model = build_transformer(diffusers_transformer_kwargs(native))
    report = compare_keys(model_shapes(model), {k: tuple(v.shape) for k, v in
                                                transformer_state_dict(_meta_tensors(manifest["keys"])).items()})
    assert report.ok, report.describe(10)


def test_version_is_detected_from_keys():
    sd20, meta20 = random_native_checkpoint(seed=0)
    sd23, meta23 = random_ltx23_checkpoint(seed=0)
    assert ltx_version(sd20) == "2.0" and ltx_version(sd23) == "2.3"
    assert load_transformer(sd20, meta20).version == "2.0"
    assert load_transformer(sd23, meta23).version == "2.3"
    with pytest.raises(CheckpointError, match="LTX-2.5"):
        ltx_version([*sd23, PREFIX + "keyframes_abs_pos_embedding"])


def test_header_that_contradicts_the_keys_is_refused():
    sd23, _ = random_ltx23_checkpoint(seed=0)
    header = dict(TINY_LTX23_NATIVE_CONFIG, cross_attention_adaln=False)
    with pytest.raises(CheckpointError, match="LTX-2.3 model but the header config says cross_attention_adaln"):
        load_transformer(sd23, {"config": json.dumps({"transformer": header})})


def test_strict_load_names_every_missing_and_unexpected_key():
    sd, meta = random_ltx23_checkpoint(seed=2)
    sd.pop(PREFIX + "transformer_blocks.1.audio_to_video_attn.to_gate_logits.weight")
    sd.pop(PREFIX + "audio_prompt_adaln_single.linear.bias")
    sd[PREFIX + "transformer_blocks.0.prompt_scale_shift_table"] = torch.zeros(3, 16)
    sd[PREFIX + "caption_projection.linear_1.weight"] = torch.zeros(16, 24)
    with pytest.raises(CheckpointError) as err:
        load_transformer(sd, meta)
    msg = str(err.value)
    for name in ("transformer_blocks.1.audio_to_video_attn.to_gate_logits.weight", "audio_prompt_adaln.linear.bias",
                 "transformer_blocks.0.prompt_scale_shift_table", "caption_projection.linear_1.weight"):
        assert name in msg, name


def test_tiny_builder_has_every_23_module(tiny):
    model = tiny.transformer
    block = model.transformer_blocks[0]
    for name in ATTENTIONS:
        gate = getattr(block, name).to_gate_logits
        assert gate is not None and gate.out_features == getattr(block, name).heads
    dim = TINY_LTX23_NATIVE_CONFIG["num_attention_heads"] * TINY_LTX23_NATIVE_CONFIG["attention_head_dim"]
    assert block.scale_shift_table.shape == (9, dim) and block.prompt_scale_shift_table.shape == (2, dim)
    assert model.prompt_adaln.linear.out_features == 2 * dim
    assert not hasattr(model, "caption_projection")


def _dubit_inputs(fps=24.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    ref_video = torch.randn(1, 128, 2, 2, 3, generator=g)
    video = dubit_video_state(ref_video, fps)
    audio = dubit_audio_state(torch.randn(1, 8, 11, 16, generator=g), 9)
    video_ctx = torch.randn(1, 5, TINY_LTX23_NATIVE_CONFIG["cross_attention_dim"], generator=g)
    audio_ctx = torch.randn(1, 5, TINY_LTX23_NATIVE_CONFIG["audio_cross_attention_dim"], generator=g)
    noise_v = torch.randn(video.latent.shape, generator=g)
    noise_a = torch.randn(audio.latent.shape, generator=g)
    return video, audio, video_ctx, audio_ctx, noise_v, noise_a


def _forward(model, video, audio, vctx, actx, v_sigma, a_sigma, **kw):
    with torch.no_grad():
        return model.denoise(video.latent, audio.latent, video.timesteps(v_sigma), audio.timesteps(a_sigma),
                             video.positions, audio.positions, vctx, actx, **kw)


def test_tiny_forward_in_the_dubit_layout(tiny):
    from soundstage.models.just_dub_it.in_context import add_noise

    video, audio, vctx, actx, nv, na = _dubit_inputs()
    video, audio = add_noise(video, nv), add_noise(audio, na)
    v_den, a_den = _forward(tiny, video, audio, vctx, actx, 0.9, 0.9)
    assert v_den.shape == video.latent.shape and a_den.shape == audio.latent.shape
    assert torch.isfinite(v_den).all() and torch.isfinite(a_den).all()
    # Reference tokens have timestep 0: their denoised value is their clean latent.
    torch.testing.assert_close(v_den[:, video.num_target:], video.clean[:, video.num_target:], rtol=0, atol=0)
    torch.testing.assert_close(a_den[:, audio.num_target:], audio.clean[:, audio.num_target:], rtol=0, atol=0)


def test_cross_stream_gate_follows_the_other_streams_sigma(tiny):
    # 1.2.0: the video's a2v gate comes from the audio's scalar sigma, not from any video timestep.
    video, audio, vctx, actx, nv, na = _dubit_inputs(seed=1)
    args = (video.latent, audio.latent, video.timesteps(0.7), audio.timesteps(0.7), video.positions,
            audio.positions, vctx, actx)
    with torch.no_grad():
        base_v, base_a = tiny(*args, video_sigma=0.7, audio_sigma=0.7)
        moved_v, moved_a = tiny(*args, video_sigma=0.7, audio_sigma=0.2)
    assert (moved_v - base_v).abs().max() > 1e-4  # video moved through its gate (and audio's prompt AdaLN)
    assert (moved_a - base_a).abs().max() > 1e-4


def test_sigma_inputs_are_refused_by_an_ltx20_transformer():
    sd, meta = random_native_checkpoint(seed=0)
    model = load_transformer(sd, meta)
    video, audio, *_ = _dubit_inputs()
    ctx = torch.zeros(1, 3, 24)
    with pytest.raises(ValueError, match="LTX-2.3 inputs"):
        model(video.latent, audio.latent, video.timesteps(0.5), audio.timesteps(0.5), video.positions,
              audio.positions, ctx, ctx, video_sigma=0.5)


@pytest.mark.parametrize("style", ["ltx_core", "scaled_fp8"])
def test_fp8_release_of_23_keeps_gate_logits_in_fp8(style):
    from test_ltx2_formats import _dequantised, _quantise

    sd, meta = random_ltx23_checkpoint(seed=5)
    q = _quantise(sd, style)
    model = load_transformer(q, meta)
    gate = model.transformer.transformer_blocks[0].video_to_audio_attn.to_gate_logits
    assert isinstance(gate, Fp8Linear)
    video, audio, vctx, actx, nv, na = _dubit_inputs(seed=2)
    got = _forward(model, video, audio, vctx, actx, 0.8, 0.8)
    want = _forward(load_transformer(_dequantised(q), meta), video, audio, vctx, actx, 0.8, 0.8)
    for g, w in zip(got, want):
        assert (g - w).abs().max().item() < 1e-4
