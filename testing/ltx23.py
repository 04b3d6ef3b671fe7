"""Tiny random LTX-2.3 checkpoints in the native single-file layout (every 2.3 flag on: gated
attention, 9-row AdaLN tables, prompt AdaLN, no caption projection), for tests, benchmarks and
headless example runs through the same loader as the released 22B file.

The sizes are those of the ``ltx23_dubit`` golden fixture: video 2 heads x 8 (16 wide), audio
2 heads x 4 (8 wide), 2 layers; text contexts enter the transformer at the stream widths.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..models.just_dub_it.config import LTX23_22B_NATIVE_CONFIG
from .just_dub_it import random_native_checkpoint, save_single_file

TINY_LTX23_NATIVE_CONFIG: dict[str, Any] = {
    **LTX23_22B_NATIVE_CONFIG,
    "num_attention_heads": 2, "attention_head_dim": 8, "cross_attention_dim": 16, "num_layers": 2,
    "caption_channels": 24, "audio_num_attention_heads": 2, "audio_attention_head_dim": 4,
    "audio_cross_attention_dim": 8,
    "connector_num_layers": 1, "connector_num_attention_heads": 2, "connector_attention_head_dim": 8,
    "audio_connector_num_attention_heads": 2, "audio_connector_attention_head_dim": 4,
    "connector_num_learnable_registers": 8, "connector_positional_embedding_max_pos": [16],
}


def random_ltx23_checkpoint(seed: int = 0, native_config: dict[str, Any] | None = None):
    """(state dict with native ``model.diffusion_model.*`` keys, metadata with the header config)."""
    return random_native_checkpoint(dict(TINY_LTX23_NATIVE_CONFIG if native_config is None else native_config), seed)


def write_tiny_ltx23_checkpoint(path: str | Path, seed: int = 0, native_config: dict[str, Any] | None = None) -> Path:
    from safetensors.torch import save_file

    sd, meta = random_ltx23_checkpoint(seed, native_config)
    meta = {**meta, "model_version": "2.3.0"}
    path = Path(path)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path), metadata=meta)
    return path


def tiny_ltx23_transformer(seed: int = 0, *, dtype: torch.dtype | None = None):
    """A loaded tiny LTX-2.3 :class:`~soundstage.models.just_dub_it.transformer.InContextTransformer`."""
    from ..models.just_dub_it.transformer import load_transformer

    sd, meta = random_ltx23_checkpoint(seed)
    return load_transformer(sd, meta, dtype=dtype)


def tiny_ltx23_header() -> dict[str, str]:
    return {"config": json.dumps({"transformer": TINY_LTX23_NATIVE_CONFIG}), "model_version": "2.3.0"}


# ---- text connectors (FeatureExtractorV2 projections + gated connectors with registers) -----------

def _native_connector_key(key: str) -> str:
    from .just_dub_it import _native_connector_key as native_20

    for stream in ("video", "audio"):
        if key.startswith(f"{stream}_text_proj_in."):
            return f"text_embedding_projection.{stream}_aggregate_embed." + key[len(f"{stream}_text_proj_in."):]
    return native_20(key)


def random_ltx23_connectors(native_config: dict[str, Any] | None = None, gemma_layers: int = 2, seed: int = 0):
    """Tiny 2.3 text projections + connectors under their native single-file keys; the Gemma width is
    ``caption_channels`` and ``gemma_layers`` + 1 hidden states are stacked (as the tiny Gemma gives)."""
    from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors

    from ..models.just_dub_it.text import connector_kwargs, connector_state_dict
    from .just_dub_it import _randomise

    native = dict(TINY_LTX23_NATIVE_CONFIG if native_config is None else native_config)
    meta = {"config": json.dumps({"transformer": native})}
    video = native["num_attention_heads"] * native["attention_head_dim"]
    audio = native["audio_num_attention_heads"] * native["audio_attention_head_dim"]
    flat = native["caption_channels"] * (gemma_layers + 1)
    registers = native["connector_num_learnable_registers"]
    probe = {"video_text_proj_in.weight": torch.empty(video, flat), "video_text_proj_in.bias": torch.empty(video),
             "audio_text_proj_in.weight": torch.empty(audio, flat),
             "video_connector.learnable_registers": torch.empty(registers, video),
             "audio_connector.learnable_registers": torch.empty(registers, audio)}
    for stream in ("video", "audio"):
        for i in range(native["connector_num_layers"]):
            probe[f"{stream}_connector.transformer_blocks.{i}.attn1.to_gate_logits.weight"] = torch.empty(0)
    model = LTX2TextConnectors(**connector_kwargs(probe, meta))
    sd = _randomise(model.state_dict(), torch.Generator().manual_seed(seed), _native_connector_key)
    assert set(connector_state_dict(sd)) == set(model.state_dict()), "native 2.3 connector key table out of date"
    return sd


def write_tiny_ltx23_single_file(path: str | Path, seed: int = 0) -> Path:
    """Transformer + 2.3 text connectors + 2.3 video VAE + audio VAE + 48 kHz BWE vocoder in one native
    single file (loads with ``models.just_dub_it.bundle.load_ltx2_parts``; pair it with ``write_tiny_gemma``)."""
    return save_single_file(path, random_ltx23_checkpoint(seed), random_ltx23_codecs(seed),
                            random_ltx23_connectors(seed=seed), model_version="2.3.0")


# ---- codecs: 2.3 video VAE and the vocoder with bandwidth extension ------------------------------

_TINY_VAE_DIVISOR = 32  # 256..1024 channels -> 8..32


def _native_ltx23_video_vae_key(key: str) -> str:
    import re

    stats = {"latents_mean": "per_channel_statistics.mean-of-means", "latents_std": "per_channel_statistics.std-of-means"}
    if key in stats:
        return "vae." + stats[key]

    def flat(m: "re.Match") -> str:
        part, stage, resampler = m.group(1), m.group(2), m.group(3)
        if part == "encoder.down_blocks":
            return f"encoder.down_blocks.{2 * int(stage) + (1 if resampler else 0)}."
        return f"decoder.up_blocks.{2 * int(stage) + (1 if resampler else 2)}."

    key = re.sub(r"^(encoder\.down_blocks|decoder\.up_blocks)\.(\d+)\.(downsamplers\.0\.|upsamplers\.0\.)?", flat, key)
    key = key.replace("encoder.mid_block.", "encoder.down_blocks.8.").replace("decoder.mid_block.", "decoder.up_blocks.0.")
    return "vae." + key.replace(".resnets.", ".res_blocks.")


_BWE_NATIVE = (("conv_in.", "conv_pre."), ("upsamplers.", "ups."), ("resnets.", "resblocks."),
               ("conv_out.", "conv_post."), ("act_out.", "act_post."))


def _native_bwe_vocoder_key(key: str) -> str:
    part, _, rest = key.partition(".")
    if part in ("vocoder", "bwe_generator"):
        for diff, native in _BWE_NATIVE:
            if rest.startswith(diff):
                rest = native + rest[len(diff):]
        rest = rest.replace(".downsample.filter", ".downsample.lowpass.filter")
    return f"vocoder.{part}.{rest}"


# Real rates and kernels (16 kHz from 100 Hz mel frames, x3 to 48 kHz), tiny widths (halved per upsampling).
TINY_BWE_VOCODER_CONFIG = {
    "vocoder": {"upsample_initial_channel": 64, "resblock": "AMP1", "upsample_rates": [5, 2, 2, 2, 2, 2],
                "resblock_kernel_sizes": [3], "upsample_kernel_sizes": [11, 4, 4, 4, 4, 4],
                "resblock_dilation_sizes": [[1, 3, 5]], "stereo": True, "use_tanh_at_final": False,
                "activation": "snakebeta", "use_bias_at_final": False},
    "bwe": {"upsample_initial_channel": 32, "resblock": "AMP1", "upsample_rates": [6, 5, 2, 2, 2],
            "resblock_kernel_sizes": [3], "upsample_kernel_sizes": [12, 11, 4, 4, 4],
            "resblock_dilation_sizes": [[1, 3, 5]], "stereo": True, "use_tanh_at_final": False,
            "activation": "snakebeta", "use_bias_at_final": False, "apply_final_activation": False,
            "input_sampling_rate": 16000, "output_sampling_rate": 48000, "hop_length": 80, "n_fft": 512,
            "win_size": 512, "num_mels": 64},
}


def random_ltx23_codecs(seed: int = 0) -> tuple[dict[str, torch.Tensor], dict]:
    """Tiny 2.3 video VAE, the (unchanged) audio VAE and the BWE vocoder under their native keys."""
    from diffusers import AutoencoderKLLTX2Video
    from diffusers.pipelines.ltx2.vocoder import LTX2VocoderWithBWE

    from ..models.just_dub_it.codecs import LTX23_VIDEO_VAE, bwe_vocoder_kwargs, video_vae_state_dict, vocoder_state_dict
    from .just_dub_it import _randomise, random_native_codecs

    sd, cfg = random_native_codecs(seed)
    sd = {k: v for k, v in sd.items() if k.startswith("audio_vae.")}
    g = torch.Generator().manual_seed(seed + 1)
    arch = dict(LTX23_VIDEO_VAE)
    for key in ("block_out_channels", "decoder_block_out_channels"):
        arch[key] = tuple(c // _TINY_VAE_DIVISOR for c in arch[key])
    video = AutoencoderKLLTX2Video(**arch)
    sd.update(_randomise(video.state_dict(), g, _native_ltx23_video_vae_key))
    cfg = {**cfg, "vocoder": TINY_BWE_VOCODER_CONFIG}
    meta = {"config": json.dumps(cfg)}
    probe = {f"{p}.conv_in.weight": torch.empty(c, 128, 7) for p, c in (("vocoder", 64), ("bwe_generator", 32))}
    probe.update({f"{p}.upsamplers.{i}.weight": torch.empty(0) for p, n in (("vocoder", 6), ("bwe_generator", 5))
                  for i in range(n)})
    vocoder = LTX2VocoderWithBWE(**bwe_vocoder_kwargs(probe, meta))
    voc = _randomise(vocoder.state_dict(), g, _native_bwe_vocoder_key)
    sd.update(voc)
    assert set(video_vae_state_dict(sd)) == set(video.state_dict()), "native 2.3 video VAE key table out of date"
    assert set(vocoder_state_dict(sd)) == set(vocoder.state_dict()), "native BWE vocoder key table out of date"
    return sd, cfg
