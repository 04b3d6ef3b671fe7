"""Everything one LTX-2 single file holds, loaded together (transformer, text connectors,
video VAE, audio VAE, vocoder); parts absent from the file stay ``None``. bf16 and fp8 releases alike
(see :mod:`.formats`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..common.checkpoint import load_file, safetensors_metadata
from .codecs import AUDIO_VAE_PREFIX, VIDEO_VAE_PREFIX, VOCODER_PREFIX, load_audio_vae, load_video_vae, load_vocoder
from .formats import read_fp8_layout
from .text import load_text_connectors
from .transformer import FP8_BLOCKS_PREFIX, InContextTransformer, load_transformer


@dataclass
class LTX2Parts:
    transformer: InContextTransformer
    connectors: Any = None
    video_vae: Any = None
    audio_vae: Any = None
    vocoder: Any = None


def _has(checkpoint, prefix: str) -> bool:
    return any(k.startswith(prefix) for k in checkpoint)


def load_ltx2_parts(path: str | Path, *, dtype: torch.dtype | None = None) -> LTX2Parts:
    meta = safetensors_metadata(path) if str(path).endswith(".safetensors") else {}
    layout = read_fp8_layout(load_file(path), meta, context=f"LTX-2 checkpoint {Path(path).name}")
    parts = LTX2Parts(load_transformer(layout, meta, dtype=dtype))
    # An fp8 release may quantise connector/VAE layers too: those small parts are multiplied out.
    checkpoint = layout.dequantized(dtype, skip=(FP8_BLOCKS_PREFIX,))
    if _has(checkpoint, "text_embedding_projection."):
        parts.connectors = load_text_connectors(checkpoint, meta, dtype=dtype)
    if _has(checkpoint, VIDEO_VAE_PREFIX):
        parts.video_vae = load_video_vae(checkpoint, meta, dtype=dtype)
    if _has(checkpoint, AUDIO_VAE_PREFIX):
        parts.audio_vae = load_audio_vae(checkpoint, meta, dtype=dtype)
    if _has(checkpoint, VOCODER_PREFIX):
        parts.vocoder = load_vocoder(checkpoint, meta, dtype=dtype)
    return parts
