"""Ovi fusion checkpoints (``model.safetensors``: ``video_model.*`` / ``audio_model.*``, Wan naming).

Module names are Ovi's own, so the state dict loads with no renaming. Head count and text length
are not recoverable from weight shapes: the released models use 128-wide heads and 512 tokens.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch

from ..common.checkpoint import CheckpointError, build_and_load, load_file
from .fusion import FusionConfig, OviFusion
from .rope import AUDIO_TEMPORAL_SCALE
from .tower import audio_config, video_config

WAN_HEAD_DIM = 128  # Wan2.2-TI2V-5B: 3072 = 24 heads x 128
WAN_TEXT_LEN = 512
PREFIXES = ("video_model.", "audio_model.")


def _num_layers(sd: Mapping[str, torch.Tensor], prefix: str) -> int:
    idx = {int(k[len(prefix) + 7:].split(".")[0]) for k in sd if k.startswith(prefix + "blocks.")}
    if not idx:
        raise CheckpointError(f"Ovi checkpoint: no {prefix}blocks.* keys")
    return max(idx) + 1


def config_from_state_dict(sd: Mapping[str, torch.Tensor], *, num_heads: int | None = None,
                           text_len: int = WAN_TEXT_LEN, eps: float = 1e-6,
                           audio_rope_scale: float = AUDIO_TEMPORAL_SCALE) -> FusionConfig:
    """Read every size the weights reveal; ``num_heads`` defaults to dim / 128 (Wan)."""
    missing = [k for k in ("video_model.patch_embedding.weight", "audio_model.patch_embedding.0.weight")
               if k not in sd]
    if missing:
        raise CheckpointError(f"not an Ovi fusion checkpoint: missing {', '.join(missing)}")

    def common(prefix: str) -> dict:
        dim = sd[f"{prefix}text_embedding.0.weight"].shape[0]
        heads = num_heads or max(1, dim // WAN_HEAD_DIM)
        return dict(
            dim=dim,
            ffn_dim=sd[f"{prefix}blocks.0.ffn.0.weight"].shape[0],
            freq_dim=sd[f"{prefix}time_embedding.0.weight"].shape[1],
            text_dim=sd[f"{prefix}text_embedding.0.weight"].shape[1],
            num_heads=heads,
            num_layers=_num_layers(sd, prefix),
            text_len=text_len,
            eps=eps,
        )

    pv = sd["video_model.patch_embedding.weight"]  # [dim, in, pt, ph, pw]
    head_v = sd["video_model.head.head.weight"].shape[0]
    patch = tuple(pv.shape[2:])
    video = video_config(in_dim=pv.shape[1], out_dim=head_v // (patch[0] * patch[1] * patch[2]),
                         patch_size=patch, **common("video_model."))
    pa = sd["audio_model.patch_embedding.0.weight"]  # [dim, in, 7]
    audio = audio_config(in_dim=pa.shape[1], out_dim=sd["audio_model.head.head.weight"].shape[0],
                         temporal_rope_scale=audio_rope_scale, **common("audio_model."))
    return FusionConfig(video=video, audio=audio)


def load_ovi_fusion(source: str | Path | Mapping[str, torch.Tensor], *, num_heads: int | None = None,
                    text_len: int = WAN_TEXT_LEN, dtype: torch.dtype | None = None,
                    device: str | torch.device = "cpu", eps: float = 1e-6,
                    audio_rope_scale: float = AUDIO_TEMPORAL_SCALE) -> OviFusion:
    """Build on meta and adopt the checkpoint's tensors (strict: every key and shape must match)."""
    sd = load_file(source) if isinstance(source, (str, Path)) else dict(source)
    sd = {k: v for k, v in sd.items() if k.startswith(PREFIXES)}
    config = config_from_state_dict(sd, num_heads=num_heads, text_len=text_len, eps=eps,
                                    audio_rope_scale=audio_rope_scale)
    model = build_and_load(lambda: OviFusion(config), sd, context="Ovi fusion checkpoint", dtype=dtype)
    return model.to(device).eval().requires_grad_(False)


def save_ovi_fusion(model: OviFusion, path: str | Path, dtype: torch.dtype | None = None) -> Path:
    """Write ``model.safetensors`` in Ovi's layout (``video_model.*`` / ``audio_model.*``): what
    :func:`load_ovi_fusion` reads back."""
    from safetensors.torch import save_file

    sd = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().contiguous()
          for k, v in model.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(path))
    return path
