"""MTV denoiser (CogVideoX backbone + MST-ControlNet) against the golden fixtures; loader checks."""
from __future__ import annotations

import argparse

import pytest
import torch

from conftest import golden_files, golden_parts
from soundstage.models.common.checkpoint import CheckpointError, meta_device
from soundstage.models.mtv.audio_modules import MSTConfig
from soundstage.models.mtv.convert import convert_sat_to_ours, read_official_checkpoint, sat_network_state
from soundstage.models.mtv.transformer import BackboneConfig, MTVTransformer

FILES = golden_files("mtv_audio")


def _case(path):
    sd, inputs, outputs, meta = golden_parts(path)
    return meta, sd, inputs, outputs


def _load(meta, sd):
    c = meta["constructor"]["DiffusionTransformer"]
    return MTVTransformer.from_official_state_dict(sd, latent_height=c["latent_height"], latent_width=c["latent_width"])


@pytest.fixture(scope="module", params=FILES, ids=lambda p: p.stem)
def golden(request):
    meta, sd, inputs, outputs = _case(request.param)
    model = _load(meta, sd)
    trace = {}
    with torch.no_grad():
        tokens = model.audio.project(
            inputs["audio_feat_vocal"], inputs["audio_feat_effect"], inputs["audio_feat_music"],
            inputs.get("audio_feat_vocal_1"),
        )
        trace.update({f"tokens_{k}": v for k, v in tokens.items()})
        trace["model_out"] = model(
            inputs["x"], inputs["context"], inputs["timesteps"], tokens,
            image_latents=inputs["concat_images"], trace=trace,
        )
    return meta, sd, inputs, outputs, model, trace


def test_every_reference_output_within_tolerance(golden_dir, golden):
    meta, _, _, outputs, _, trace = golden
    checked = 0
    for name, tol in meta["tolerance"].items():
        ref = outputs[name]
        got = trace[name]
        assert got.numel() == ref.numel(), name
        assert (got.reshape(ref.shape) - ref).abs().max().item() <= tol, name
        checked += 1
    assert checked == len(outputs)  # the fixture's every output has a tolerance and was compared


def test_audio_step_alone(golden_dir, golden):
    """Layer i's audio step from its stored input: speech/effect cross-attention + music scale/shift."""
    meta, _, inputs, outputs, model, _ = golden
    _, t, _, h, w = inputs["x"].shape
    cos, sin = model.rope(t, h, w, "cpu")
    n = cos.shape[0] // t
    for i, block in enumerate(model.backbone.transformer_blocks):
        with torch.no_grad():
            got = model.audio.layers[i](
                outputs[f"L{i}.img_hidden_before_audio"], outputs["audio_emb"], t,
                block.attn1.norm_q, block.attn1.norm_k, (cos[:n], sin[:n]),
            )
        tol = meta["tolerance"][f"L{i}.img_hidden_after_audio"]
        assert (got - outputs[f"L{i}.img_hidden_after_audio"]).abs().max().item() <= tol


def test_audio_step_changes_output(golden_dir, golden):
    """Zeroing the speech stream moves the output: the injection is live, not a no-op."""
    _, _, inputs, outputs, model, _ = golden
    with torch.no_grad():
        tokens = model.audio.project(
            torch.zeros_like(inputs["audio_feat_vocal"]), inputs["audio_feat_effect"], inputs["audio_feat_music"],
            inputs.get("audio_feat_vocal_1"),
        )
        out = model(inputs["x"], inputs["context"], inputs["timesteps"], tokens, image_latents=inputs["concat_images"])
    assert (out - outputs["model_out"]).abs().max().item() > 1e-3


def test_rope_tables_equal_checkpoint_buffers(golden_dir, golden):
    _, sd, inputs, _, model, _ = golden
    net = sat_network_state(sd)  # the official checkpoint's own RoPE buffers
    cos, sin = net["mixins.pos_embed.freqs_cos"], net["mixins.pos_embed.freqs_sin"]
    _, t, _, h, w = inputs["x"].shape
    rc, rs = model.rope(t, h, w, "cpu")
    assert torch.equal(rc, cos) and torch.equal(rs, sin)


def test_configs_read_from_weights(golden_dir, golden):
    meta, _, inputs, _, model, _ = golden
    c = meta["constructor"]["DiffusionTransformer"]
    ta = c["transformer_args"]
    assert model.config.num_layers == c["num_layers"]
    assert model.config.num_heads == c["num_attention_heads"]
    assert model.config.in_channels == c["in_channels"] and model.config.out_channels == c["out_channels"]
    assert model.config.text_length == inputs["context"].shape[1]
    assert model.audio.config.multi_person == ta["is_multi_person"]
    assert model.audio.config.num_dual_blocks == c["num_layers_dual"]


def test_deepspeed_file_loads_through_module_key(golden_dir, golden, tmp_path):
    """The released file keeps tensors under ``module``; it is read with weights_only=True."""
    meta, sd, inputs, outputs, _, _ = golden
    path = tmp_path / "mp_rank_00_model_states.pt"
    torch.save({"module": {f"model.diffusion_model.{k}" if not k.startswith("model.") else k: v
                           for k, v in sd.items()}, "global_steps": 7,
                "args": argparse.Namespace(lr=1e-5, mode="finetune")}, path)
    model = _load(meta, read_official_checkpoint(path))
    tokens = model.audio.project(inputs["audio_feat_vocal"], inputs["audio_feat_effect"],
                                 inputs["audio_feat_music"], inputs.get("audio_feat_vocal_1"))
    with torch.no_grad():
        out = model(inputs["x"], inputs["context"], inputs["timesteps"], tokens, image_latents=inputs["concat_images"])
    assert (out - outputs["model_out"]).abs().max().item() <= meta["tolerance"]["model_out"]


def test_missing_and_unexpected_keys_are_named(golden_dir, golden):
    meta, sd, _, _, _, _ = golden
    broken = dict(sd)
    broken.pop("model.diffusion_model.transformer.layers.1.audio_attn_effect.key_value.weight")
    broken["model.diffusion_model.transformer.layers.0.audio_attn.extra"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as err:
        _load(meta, broken)
    assert "audio.layers.1.audio_attn_effect.key_value.weight" in str(err.value)
    assert "audio.layers.0.audio_attn.extra" in str(err.value)


def test_fused_projections_split_in_row_order(golden_dir, golden):
    _, sd, _, _, _, _ = golden
    ours = convert_sat_to_ours(sd)
    qkv = sd["model.diffusion_model.transformer.layers.0.attention.query_key_value.weight"]
    d = qkv.shape[0] // 3
    assert torch.equal(ours["backbone.transformer_blocks.0.attn1.to_k.weight"], qkv[d:2 * d])
    ada = sd["model.diffusion_model.mixins.adaln_layer.adaLN_modulations.1.1.weight"]
    h = ada.shape[0] // 12
    # diffusers norm2 = (shift, scale, gate) of the MLP, then the text's: SAT chunks 3..5 and 9..11.
    assert torch.equal(ours["backbone.transformer_blocks.1.norm2.linear.weight"][:h], ada[3 * h:4 * h])
    assert torch.equal(ours["backbone.transformer_blocks.1.norm2.linear.weight"][3 * h:4 * h], ada[9 * h:10 * h])


def test_full_size_model_builds_on_meta():
    """The real 5B-I2V + MST-ControlNet sizes construct (no weights allocated)."""
    with meta_device():
        model = MTVTransformer(BackboneConfig(), MSTConfig())
    n_backbone = sum(p.numel() for p in model.backbone.parameters())
    n_audio = sum(p.numel() for p in model.audio.parameters())
    assert 5.3e9 < n_backbone < 5.9e9  # CogVideoX-5B
    assert model.audio.audio_proj.proj1.in_features == 5 * 12 * 768
    assert model.audio.layers[0].audio_attn.key_value.in_features == 768
    assert n_audio > 1e9  # 42 x three 3072-wide cross-attentions + projectors


def test_bfloat16_weights_stay_close(golden_dir, golden):
    meta, sd, inputs, outputs, _, _ = golden
    c = meta["constructor"]["DiffusionTransformer"]
    model = MTVTransformer.from_official_state_dict(
        sd, latent_height=c["latent_height"], latent_width=c["latent_width"], dtype=torch.bfloat16)
    assert model.backbone.proj_out.weight.dtype == torch.bfloat16
    with torch.no_grad():
        tokens = model.audio.project(*(inputs[k].bfloat16() for k in ("audio_feat_vocal", "audio_feat_effect",
                                                                      "audio_feat_music")),
                                     inputs["audio_feat_vocal_1"].bfloat16() if "audio_feat_vocal_1" in inputs else None)
        out = model(inputs["x"], inputs["context"], inputs["timesteps"], tokens, image_latents=inputs["concat_images"])
    ref = outputs["model_out"]
    assert (out.float() - ref).abs().max().item() < 0.05 * ref.abs().max().item()
