"""LTX-2's video VAE, audio VAE and vocoder (diffusers classes) from the native single file.

Key renames are diffusers' own conversion tables (video/audio VAE) plus a four-rule table for the
vocoder. The native file's ``config`` sections for these parts use ltx_core's block-list format;
we take the LTX-2.0 architecture from the diffusers class defaults (what diffusers converts the
release with) and read every width from the weights, so the strict load checks the rest.
"""
from __future__ import annotations

import json
from typing import Any, Mapping

import torch
from diffusers import AutoencoderKLLTX2Audio, AutoencoderKLLTX2Video
from diffusers.loaders.single_file_utils import (
    convert_ltx2_audio_vae_to_diffusers,
    convert_ltx2_vae_to_diffusers,
)
from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder

from ..common.checkpoint import CheckpointError, build_and_load, rename_keys, select

VIDEO_VAE_PREFIX = "vae."
AUDIO_VAE_PREFIX = "audio_vae."
VOCODER_PREFIX = "vocoder."
# ltx_core Vocoder -> diffusers LTX2Vocoder module names.
VOCODER_RENAMES = (
    (r"^conv_pre\.", "conv_in."),
    (r"^ups\.", "upsamplers."),
    (r"^resblocks\.", "resnets."),
    (r"^conv_post\.", "conv_out."),
)
# ltx_core's AudioProcessor front end (audio_vae preprocessing section): 16 kHz log-mel.
MEL_N_FFT = 1024


def _section(metadata: Mapping[str, str] | None, name: str) -> dict[str, Any]:
    raw = (metadata or {}).get("config")
    return dict(json.loads(raw).get(name, {})) if raw else {}


def _need(sd: Mapping[str, torch.Tensor], key: str, part: str) -> torch.Tensor:
    if key not in sd:
        raise CheckpointError(f"LTX-2 {part}: key {key!r} not found; is this an LTX-2 single-file checkpoint?")
    return sd[key]


def video_vae_kwargs(sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """LTX-2.0 video VAE architecture with widths scaled to the file's (tiny test files shrink them)."""
    with torch.device("meta"):
        reference = AutoencoderKLLTX2Video()  # class defaults = the LTX-2.0 release architecture
    ref = reference.state_dict()
    enc_key, dec_key = "encoder.mid_block.resnets.0.conv1.conv.weight", "decoder.conv_out.conv.weight"
    scale_e = _need(sd, enc_key, "video VAE").shape[0] / ref[enc_key].shape[0]
    scale_d = _need(sd, dec_key, "video VAE").shape[1] / ref[dec_key].shape[1]
    cfg = reference.config
    return dict(
        latent_channels=_need(sd, "decoder.conv_in.conv.weight", "video VAE").shape[1],
        block_out_channels=tuple(int(c * scale_e) for c in cfg.block_out_channels),
        decoder_block_out_channels=tuple(int(c * scale_d) for c in cfg.decoder_block_out_channels),
        timestep_conditioning=any(k.startswith("decoder.time_embedder") for k in sd),
    )


def audio_vae_kwargs(sd: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None) -> dict[str, Any]:
    cfg = _section(metadata, "audio_vae")
    params = cfg.get("model", {}).get("params", {})
    dd = params.get("ddconfig", {})
    stft = cfg.get("preprocessing", {}).get("stft", {})
    base = _need(sd, "encoder.conv_in.conv.weight", "audio VAE").shape[0]
    kwargs = dict(
        base_channels=dd.get("ch", base),
        output_channels=dd.get("out_ch", 2),
        in_channels=dd.get("in_channels", 2),
        ch_mult=tuple(dd.get("ch_mult", (1, 2, 4))),
        num_res_blocks=dd.get("num_res_blocks", 2),
        latent_channels=dd.get("z_channels", 8),
        mel_bins=dd.get("mel_bins", 64),
        sample_rate=params.get("sampling_rate", 16000),
        mel_hop_length=stft.get("hop_length", 160),
        is_causal=stft.get("causal", True),
        mid_block_add_attention=any(".mid.attn_1." in k for k in sd),
    )
    if kwargs["base_channels"] != base:
        raise CheckpointError(f"LTX-2 audio VAE: config ch={kwargs['base_channels']} but weights have {base}")
    return kwargs


def vocoder_kwargs(sd: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None) -> dict[str, Any]:
    cfg = _section(metadata, "vocoder")  # ltx_core VocoderConfigurator names
    conv_in = _need(sd, "conv_in.weight", "vocoder")
    n_up = len({k.split(".")[1] for k in sd if k.startswith("upsamplers.")})
    kernels = [sd[f"upsamplers.{i}.weight"].shape[-1] for i in range(n_up)]
    return dict(
        in_channels=conv_in.shape[1],
        hidden_channels=cfg.get("upsample_initial_channel", conv_in.shape[0]),
        out_channels=2 if cfg.get("stereo", True) else 1,
        upsample_kernel_sizes=cfg.get("upsample_kernel_sizes", kernels),
        upsample_factors=cfg.get("upsample_rates", [6, 5, 2, 2, 2][:n_up]),
        resnet_kernel_sizes=cfg.get("resblock_kernel_sizes", [3, 7, 11]),
        resnet_dilations=cfg.get("resblock_dilation_sizes", [[1, 3, 5], [1, 3, 5], [1, 3, 5]]),
        output_sampling_rate=cfg.get("output_sample_rate", 24000),
    )


def video_vae_state_dict(checkpoint: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    sd = select(checkpoint, VIDEO_VAE_PREFIX, strip=False)
    return convert_ltx2_vae_to_diffusers(dict(sd))


def audio_vae_state_dict(checkpoint: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    sd = select(checkpoint, AUDIO_VAE_PREFIX, strip=False)
    return convert_ltx2_audio_vae_to_diffusers(dict(sd))


def vocoder_state_dict(checkpoint: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return rename_keys(select(checkpoint, VOCODER_PREFIX), VOCODER_RENAMES)


def load_video_vae(checkpoint, metadata=None, *, dtype=None) -> AutoencoderKLLTX2Video:
    sd = video_vae_state_dict(checkpoint)
    kw = video_vae_kwargs(sd)
    return build_and_load(lambda: AutoencoderKLLTX2Video(**kw), sd, context="LTX-2 video VAE", dtype=dtype).eval().requires_grad_(False)


def load_audio_vae(checkpoint, metadata=None, *, dtype=None) -> AutoencoderKLLTX2Audio:
    sd = audio_vae_state_dict(checkpoint)
    kw = audio_vae_kwargs(sd, metadata)
    return build_and_load(lambda: AutoencoderKLLTX2Audio(**kw), sd, context="LTX-2 audio VAE", dtype=dtype).eval().requires_grad_(False)


def load_vocoder(checkpoint, metadata=None, *, dtype=None) -> LTX2Vocoder:
    sd = vocoder_state_dict(checkpoint)
    kw = vocoder_kwargs(sd, metadata)
    return build_and_load(lambda: LTX2Vocoder(**kw), sd, context="LTX-2 vocoder", dtype=dtype).eval().requires_grad_(False)
