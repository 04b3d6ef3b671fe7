"""CogVideoX 3-D rotary tables in the layout of MTV's ``Rotary3DPositionEmbeddingMixin``.

Each head dim is split t : h : w = 1/4 : 3/8 : 3/8, each part's frequencies repeated pairwise
("(n r)", r=2), positions are plain aranges over (frames, rows, cols) of the patch grid.
"""
from __future__ import annotations

import torch

from ..common.rope import inverse_frequencies


def _axis_freqs(positions: torch.Tensor, dim: int, theta: float) -> torch.Tensor:
    freqs = inverse_frequencies(dim, theta=theta)
    return torch.repeat_interleave(positions[:, None] * freqs[None], 2, dim=-1)


def rope_3d(
    frames: int, height: int, width: int, head_dim: int, *, theta: float = 10000.0, device=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin), each [frames*height*width, head_dim], token order t-h-w."""
    dim_t, dim_h = head_dim // 4, head_dim // 8 * 3
    dim_w = dim_h
    ft = _axis_freqs(torch.arange(frames, dtype=torch.float32), dim_t, theta)
    fh = _axis_freqs(torch.arange(height, dtype=torch.float32), dim_h, theta)
    fw = _axis_freqs(torch.arange(width, dtype=torch.float32), dim_w, theta)
    freqs = torch.cat(
        [
            ft[:, None, None].expand(frames, height, width, -1),
            fh[None, :, None].expand(frames, height, width, -1),
            fw[None, None, :].expand(frames, height, width, -1),
        ],
        dim=-1,
    ).reshape(frames * height * width, -1)
    return freqs.cos().to(device), freqs.sin().to(device)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Interleaved-pair rotation over the last dim of [B, H, L, D] (SAT ``rotate_half``)."""
    pairs = x.unflatten(-1, (-1, 2))
    rotated = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)
