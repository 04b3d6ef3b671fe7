"""LTX-2.3 text path: FeatureExtractorV2 (per-token RMS norm, separate video / audio projections)
and the gated connectors with registers, read strictly from the 22B key layout (meta tensors) and
checked against the reference's arithmetic on a tiny model."""
from __future__ import annotations

import json
import math

import pytest
import torch

from soundstage.models.common.checkpoint import compare_keys, meta_device, model_shapes
from soundstage.models.just_dub_it.text import connector_kwargs, connector_state_dict, load_text_connectors
from soundstage.testing.ltx23 import TINY_LTX23_NATIVE_CONFIG, random_ltx23_connectors, tiny_ltx23_header


@pytest.fixture(scope="module")
def manifest(golden_dir):
    return json.loads((golden_dir / "manifests" / "ltx23_22b_single_file.json").read_text())


def test_manifest_text_path_maps_strictly(manifest):
    from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors

    keys = manifest["other_keys_in_single_file"]["keys"]
    sd = connector_state_dict({k: torch.empty(v["shape"], device="meta") for k, v in keys.items()})
    header = {"config": json.dumps(manifest["config"])}
    kw = connector_kwargs(sd, header)
    assert kw["per_modality_projections"] and kw["proj_bias"] and kw["video_gated_attn"] and kw["audio_gated_attn"]
    assert kw["text_proj_in_factor"] == 49  # Gemma-3-12B: 48 layers + the embeddings
    with meta_device():
        model = LTX2TextConnectors(**kw)
    report = compare_keys(model_shapes(model), {k: tuple(v.shape) for k, v in sd.items()})
    assert report.ok, report.describe(10)
    parts = manifest["components"]
    expected = sum(parts[p]["num_elements"] for p in
                   ("video_embeddings_connector", "audio_embeddings_connector", "text_embedding_projection"))
    assert sum(p.numel() for p in model.parameters()) == expected
    assert (model.video_connector.inner_dim, model.audio_connector.inner_dim) == (4096, 2048)
    assert len(model.video_connector.transformer_blocks) == manifest["config"]["transformer"]["connector_num_layers"]


@pytest.fixture(scope="module")
def connectors():
    return load_text_connectors(random_ltx23_connectors(seed=4), tiny_ltx23_header())


def test_features_are_per_token_rms_normed_and_rescaled_per_stream(connectors):
    # ltx_core feature_extractor.py norm_and_concat_per_token_rms + _rescale_norm, written out here.
    width = TINY_LTX23_NATIVE_CONFIG["caption_channels"]
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(2, 8, width, 3, generator=g) * torch.linspace(0.5, 4, 3)
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[1, :3] = 0  # left padding
    normed = hidden * torch.rsqrt(hidden.pow(2).mean(dim=2, keepdim=True) + 1e-6)
    normed = normed.reshape(2, 8, -1) * mask[..., None]
    seen = {}
    hooks = [getattr(connectors, f"{s}_text_proj_in").register_forward_hook(
        lambda m, args, out, s=s: seen.__setitem__(s, args[0])) for s in ("video", "audio")]
    try:
        with torch.no_grad():
            video, audio, _ = connectors(hidden, mask)
    finally:
        for h in hooks:
            h.remove()
    for stream, dim in (("video", connectors.config.video_hidden_dim), ("audio", connectors.config.audio_hidden_dim)):
        torch.testing.assert_close(seen[stream], normed * math.sqrt(dim / width), rtol=1e-5, atol=1e-5)
    assert video.shape == (2, 8, 16) and audio.shape == (2, 8, 8)


def test_padding_is_replaced_by_registers(connectors):
    # Padded positions take learnable registers, so the padded prompt's output differs from the
    # same valid tokens without padding only through the registers (and the positions).
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(1, 8, TINY_LTX23_NATIVE_CONFIG["caption_channels"], 3, generator=g)
    mask = torch.ones(1, 8, dtype=torch.long)
    mask[0, :4] = 0
    with torch.no_grad():
        before, _, _ = connectors(hidden, mask)
        connectors.video_connector.learnable_registers.add_(1.0)
        after, _, _ = connectors(hidden, mask)
        connectors.video_connector.learnable_registers.sub_(1.0)
    assert (after - before).abs().max() > 1e-3
