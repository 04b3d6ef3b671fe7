"""Tiny random LTX-2 checkpoints in the native single-file layout, for tests, benchmarks and
headless example runs (the same loader path as the released file)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from .config import LTX2_19B_NATIVE_CONFIG, diffusers_transformer_kwargs
from .transformer import TRANSFORMER_PREFIX, build_transformer, transformer_state_dict

TINY_NATIVE_CONFIG: dict[str, Any] = {
    **LTX2_19B_NATIVE_CONFIG,
    "num_attention_heads": 2, "attention_head_dim": 8, "cross_attention_dim": 16, "num_layers": 2,
    "caption_channels": 24, "audio_num_attention_heads": 2, "audio_attention_head_dim": 4,
    "audio_cross_attention_dim": 8,
}

# diffusers module names -> native names (inverse of diffusers' LTX-2 conversion table; checked on use).
_TOP_LEVEL = {
    "proj_in": "patchify_proj", "audio_proj_in": "audio_patchify_proj",
    "time_embed": "adaln_single", "audio_time_embed": "audio_adaln_single",
    "av_cross_attn_video_scale_shift": "av_ca_video_scale_shift_adaln_single",
    "av_cross_attn_video_a2v_gate": "av_ca_a2v_gate_adaln_single",
    "av_cross_attn_audio_scale_shift": "av_ca_audio_scale_shift_adaln_single",
    "av_cross_attn_audio_v2a_gate": "av_ca_v2a_gate_adaln_single",
}
_ANYWHERE = {
    "video_a2v_cross_attn_scale_shift_table": "scale_shift_table_a2v_ca_video",
    "audio_a2v_cross_attn_scale_shift_table": "scale_shift_table_a2v_ca_audio",
    ".norm_q.": ".q_norm.", ".norm_k.": ".k_norm.",
}


def native_key(key: str) -> str:
    head, _, rest = key.partition(".")
    key = f"{_TOP_LEVEL.get(head, head)}.{rest}" if rest else _TOP_LEVEL.get(head, head)
    for a, b in _ANYWHERE.items():
        key = key.replace(a, b)
    return TRANSFORMER_PREFIX + key


def random_native_checkpoint(native_config: dict[str, Any] | None = None, seed: int = 0):
    """(state dict with native keys, metadata) for a randomly initialised transformer."""
    native_config = dict(TINY_NATIVE_CONFIG if native_config is None else native_config)
    torch.manual_seed(seed)
    model = build_transformer(diffusers_transformer_kwargs(native_config))
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, v in model.state_dict().items():
        # Non-zero everywhere so every parameter matters (the reference zero-inits some layers).
        scale = 0.1 if "scale_shift" in k else (v.shape[-1] ** -0.5 if v.dim() == 2 else 0.05)
        base = 1.0 if k.endswith(("norm_q.weight", "norm_k.weight")) else 0.0
        sd[native_key(k)] = base + scale * torch.randn(v.shape, generator=g)
    roundtrip = transformer_state_dict(dict(sd))
    assert set(roundtrip) == set(model.state_dict()), "native key table out of date"
    return sd, {"config": json.dumps({"transformer": native_config})}


def write_tiny_checkpoint(path: str | Path, seed: int = 0, native_config: dict[str, Any] | None = None) -> Path:
    from safetensors.torch import save_file

    sd, meta = random_native_checkpoint(native_config, seed)
    path = Path(path)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path), metadata=meta)
    return path
