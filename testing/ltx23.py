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
from .just_dub_it import random_native_checkpoint

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
