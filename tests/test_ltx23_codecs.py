"""LTX-2.3 video VAE and the vocoder with bandwidth extension to 48 kHz: the 22B file's key layout
mapped strictly (meta tensors) and the tiny parts run end to end."""
from __future__ import annotations

import json

import pytest
import torch

from soundstage.models.common.checkpoint import compare_keys, meta_device, model_shapes
from soundstage.models.just_dub_it.codecs import (
    bwe_vocoder_kwargs,
    load_video_vae,
    load_vocoder,
    video_vae_kwargs,
    video_vae_state_dict,
    vocoder_state_dict,
)
from soundstage.testing.ltx23 import random_ltx23_codecs


@pytest.fixture(scope="module")
def manifest(golden_dir):
    return json.loads((golden_dir / "manifests" / "ltx23_22b_single_file.json").read_text())


def _meta(manifest) -> dict:
    keys = manifest["other_keys_in_single_file"]["keys"]
    return {k: torch.empty(v["shape"], device="meta") for k, v in keys.items()}


def _count(model) -> tuple[int, int]:
    sd = model.state_dict()
    return len(sd), sum(v.numel() for v in sd.values())


def test_manifest_video_vae_maps_strictly(manifest):
    from diffusers import AutoencoderKLLTX2Video

    sd = video_vae_state_dict(_meta(manifest))
    kw = video_vae_kwargs(sd)
    assert kw["decoder_spatial_padding_mode"] == "zeros" and not kw["decoder_causal"]
    with meta_device():
        model = AutoencoderKLLTX2Video(**kw)
    report = compare_keys(model_shapes(model), {k: tuple(v.shape) for k, v in sd.items()})
    assert report.ok, report.describe(10)
    part = manifest["components"]["video_vae"]
    assert _count(model) == (part["num_tensors"], part["num_elements"])


def test_manifest_vocoder_maps_strictly(manifest):
    from diffusers.pipelines.ltx2.vocoder import LTX2VocoderWithBWE

    sd = vocoder_state_dict(_meta(manifest))
    kw = bwe_vocoder_kwargs(sd, {"config": json.dumps(manifest["config"])})
    assert (kw["input_sampling_rate"], kw["output_sampling_rate"]) == (16000, 48000)
    assert kw["hidden_channels"] == 1536 and kw["bwe_hidden_channels"] == 512
    assert kw["final_act_fn"] == "clamp" and kw["bwe_final_act_fn"] is None  # ltx_core Vocoder defaults
    with meta_device():
        model = LTX2VocoderWithBWE(**kw)
    report = compare_keys(model_shapes(model), {k: tuple(v.shape) for k, v in sd.items()})
    assert report.ok, report.describe(10)
    part = manifest["components"]["vocoder"]
    assert _count(model) == (part["num_tensors"], part["num_elements"])


@pytest.fixture(scope="module")
def tiny():
    sd, cfg = random_ltx23_codecs(seed=2)
    meta = {"config": json.dumps(cfg)}
    return load_video_vae(sd, meta), load_vocoder(sd, meta), cfg


def test_tiny_video_vae_round_trip_keeps_the_32x8_compression(tiny):
    vae = tiny[0]
    x = torch.rand(1, 3, 17, 64, 96) * 2 - 1
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mode()
        y = vae.decode(z).sample
    assert z.shape == (1, 128, 3, 2, 3) and y.shape == x.shape


def test_tiny_vocoder_extends_16k_to_48k(tiny):
    vocoder, cfg = tiny[1], tiny[2]
    frames = 12
    mel = torch.randn(1, 2, frames, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        wav = vocoder(mel)
        base = vocoder.vocoder(mel)
    hop = 1
    for r in cfg["vocoder"]["vocoder"]["upsample_rates"]:
        hop *= r
    assert base.shape == (1, 2, frames * hop)  # 16 kHz: 160 samples per 10 ms mel frame
    assert wav.shape == (1, 2, 3 * frames * hop) and vocoder.config.output_sampling_rate == 48000
    assert base.abs().max() <= 1.0 and wav.abs().max() <= 1.0  # first stage clamped, BWE output clamped


def test_tiny_single_file_loads_every_23_part(tmp_path):
    from diffusers.pipelines.ltx2.vocoder import LTX2VocoderWithBWE

    from soundstage.models.just_dub_it.av_codec import decode_audio
    from soundstage.models.just_dub_it.bundle import load_ltx2_parts
    from soundstage.testing.ltx23 import write_tiny_ltx23_single_file

    parts = load_ltx2_parts(write_tiny_ltx23_single_file(tmp_path / "ltx23.safetensors", seed=1))
    assert parts.transformer.version == "2.3" and parts.connectors.config.per_modality_projections
    assert isinstance(parts.vocoder, LTX2VocoderWithBWE)
    assert len(parts.video_vae.decoder.up_blocks) == 4
    latent = torch.randn(1, 8, 6, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        wav, rate = decode_audio(parts.audio_vae, parts.vocoder, latent)
    assert rate == 48000 and wav.shape[0] == 2 and wav.shape[-1] > 0


def test_every_tensor_of_the_22b_file_belongs_to_exactly_one_part(manifest):
    # The five loaders together consume the whole single file: nothing is dropped or read twice.
    from diffusers import AutoencoderKLLTX2Audio

    from soundstage.models.just_dub_it.codecs import audio_vae_kwargs, audio_vae_state_dict
    from soundstage.models.just_dub_it.text import connector_state_dict
    from soundstage.models.just_dub_it.transformer import transformer_keys

    everything = {**manifest["keys"], **manifest["other_keys_in_single_file"]["keys"]}
    assert len(everything) == manifest["total_tensors_single_file"]
    sd = {k: torch.empty(v["shape"], device="meta") for k, v in everything.items()}
    header = {"config": json.dumps(manifest["config"])}
    audio = audio_vae_state_dict(sd)
    with meta_device():
        audio_vae = AutoencoderKLLTX2Audio(**audio_vae_kwargs(audio, header))
    report = compare_keys(model_shapes(audio_vae), {k: tuple(v.shape) for k, v in audio.items()})
    assert report.ok, report.describe(10)
    counts = [len(transformer_keys(sd)), len(connector_state_dict(sd)), len(video_vae_state_dict(sd)), len(audio),
              len(vocoder_state_dict(sd))]
    assert sum(counts) == len(everything)
    parts = manifest["components"]
    assert counts[3] == parts["audio_vae"]["num_tensors"]
