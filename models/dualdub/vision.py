"""Video features (paper 3.2): the CLIP visual encoder on one frame in every three.

The tower and its preprocessing are the shared ``models/common/clip_vision`` loader (HF folders,
ComfyUI ``clip_vision`` files, open_clip files); DualDub conditions on the pooled CLS output.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..common.clip_vision import ClipVisionEncoder, embed_frames
from ..common.clip_vision import load_clip_vision as _load_tower


def load_clip_vision(path: str | Path, dtype: torch.dtype = torch.float32) -> ClipVisionEncoder:
    return _load_tower(path, dtype=dtype, use_projection=False)


def select_frames(num_frames: int, stride: int) -> torch.Tensor:
    return torch.arange(0, num_frames, stride)


@torch.no_grad()
def encode_video(clip: ClipVisionEncoder, frames: torch.Tensor, fps: float, *, stride: int = 3, batch: int = 32):
    """frames [T, H, W, 3] in 0..1 -> (features [T', D], times [T'] in seconds) for every ``stride``-th frame."""
    if frames.dim() != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames [T, H, W, 3], got {tuple(frames.shape)}")
    idx = select_frames(frames.shape[0], stride)
    feats = embed_frames(clip, frames[idx], batch=batch)
    return feats, idx.float() / float(fps)
