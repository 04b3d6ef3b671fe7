"""LTX-2 transformer config: the native single-file ``config`` metadata -> diffusers kwargs.

The released checkpoint carries its own config (``{"transformer": {...}}`` in the safetensors
header); LTX-2.0 differs from the diffusers class defaults in RoPE layout, RoPE precision and the
audio<->video timestep multiplier, so the config must always come from the file.
"""
from __future__ import annotations

import json
from typing import Any, Mapping

from ..common.checkpoint import CheckpointError

# LTX-2.0 19B values (ltx_core LTXModelConfigurator defaults + LTX-2.0 settings), for files without metadata.
LTX2_19B_NATIVE_CONFIG: dict[str, Any] = {
    "num_attention_heads": 32, "attention_head_dim": 128, "in_channels": 128, "out_channels": 128,
    "num_layers": 48, "cross_attention_dim": 4096, "caption_channels": 3840,
    "audio_num_attention_heads": 32, "audio_attention_head_dim": 64, "audio_in_channels": 128,
    "audio_out_channels": 128, "audio_cross_attention_dim": 2048, "norm_eps": 1e-6,
    "positional_embedding_theta": 10000.0, "positional_embedding_max_pos": [20, 2048, 2048],
    "audio_positional_embedding_max_pos": [20], "timestep_scale_multiplier": 1000,
    "av_ca_timestep_scale_multiplier": 1000, "rope_type": "split", "frequencies_precision": "float64",
    "activation_fn": "gelu-approximate", "attention_bias": True, "qk_norm": "rms_norm",
    "norm_elementwise_affine": False, "use_middle_indices_grid": True,
}

# Settings of the native config that diffusers' class hard-wires; anything else cannot be honoured.
_FIXED = {
    "qk_norm": ("rms_norm",),
    "standardization_norm": ("rms_norm",),
    "positional_embedding_type": ("rope",),
    "use_middle_indices_grid": (True,),
    "use_audio_video_cross_attention": (True,),
    "share_ff": (False,),
}


def native_transformer_config(metadata: Mapping[str, str] | None) -> dict[str, Any]:
    """The ``transformer`` section of a single file's ``config`` metadata (19B defaults when absent)."""
    raw = (metadata or {}).get("config")
    if raw is None:
        return dict(LTX2_19B_NATIVE_CONFIG)
    try:
        cfg = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"LTX-2 checkpoint: metadata 'config' is not JSON ({exc})") from exc
    cfg = cfg.get("transformer", cfg)
    return {**LTX2_19B_NATIVE_CONFIG, **cfg}


def diffusers_transformer_kwargs(native: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor kwargs of ``LTX2VideoTransformer3DModel`` equivalent to a native LTX-2 config."""
    for key, allowed in _FIXED.items():
        if key in native and native[key] not in allowed:
            raise CheckpointError(f"LTX-2 config: {key}={native[key]!r} is not supported (expected {allowed[0]!r})")
    max_pos = list(native["positional_embedding_max_pos"])
    audio_max_pos = list(native["audio_positional_embedding_max_pos"])
    return dict(
        in_channels=native["in_channels"],
        out_channels=native["out_channels"],
        num_attention_heads=native["num_attention_heads"],
        attention_head_dim=native["attention_head_dim"],
        cross_attention_dim=native["cross_attention_dim"],
        pos_embed_max_pos=max_pos[0],
        base_height=max_pos[1],
        base_width=max_pos[2],
        audio_in_channels=native["audio_in_channels"],
        audio_out_channels=native["audio_out_channels"],
        audio_num_attention_heads=native["audio_num_attention_heads"],
        audio_attention_head_dim=native["audio_attention_head_dim"],
        audio_cross_attention_dim=native["audio_cross_attention_dim"],
        audio_pos_embed_max_pos=audio_max_pos[0],
        num_layers=native["num_layers"],
        activation_fn=native["activation_fn"],
        norm_elementwise_affine=native["norm_elementwise_affine"],
        norm_eps=native["norm_eps"],
        caption_channels=native["caption_channels"],
        attention_bias=native["attention_bias"],
        rope_theta=float(native["positional_embedding_theta"]),
        # LTX-2.0 computes RoPE frequencies in float64 ("frequencies_precision").
        rope_double_precision=native.get("frequencies_precision") == "float64",
        rope_type=native["rope_type"],
        timestep_scale_multiplier=native["timestep_scale_multiplier"],
        cross_attn_timestep_scale_multiplier=native["av_ca_timestep_scale_multiplier"],
    )
