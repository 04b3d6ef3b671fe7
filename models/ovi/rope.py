"""Rotary position tables for Ovi's two towers (Wan RoPE, paper 4.1 / Fig. 2).

Angles are computed in float64 as the reference does, then handed out as cos/sin tables of the
compute dtype. Wan rotates interleaved pairs (x[2i], x[2i+1]).
"""
from __future__ import annotations

import torch

from ..common.rope import inverse_frequencies

THETA = 10000.0
# Audio latent frames (157 per 5 s) map onto video latent frames (31 per 5 s): 31/157, paper 4.1.
AUDIO_TEMPORAL_SCALE = 0.19676


def band_sizes(head_dim: int) -> tuple[int, int, int]:
    """Wan's split of a head into temporal/height/width bands, in rotary (complex) pairs."""
    if head_dim % 2:
        raise ValueError(f"head_dim must be even for RoPE, got {head_dim}")
    spatial = 2 * (head_dim // 6)
    return (head_dim - 2 * spatial) // 2, spatial // 2, spatial // 2


def _angles(positions: torch.Tensor, dim: int, scale: float = 1.0) -> torch.Tensor:
    inv = inverse_frequencies(dim, theta=THETA, dtype=torch.float64)
    return torch.outer(positions.to(torch.float64), scale * inv)


def video_angles(f: int, h: int, w: int, head_dim: int, device=None) -> torch.Tensor:
    """[f*h*w, head_dim/2] float64 angles; token order is (frame, row, column)."""
    nt, nh, nw = band_sizes(head_dim)
    at = _angles(torch.arange(f), 2 * nt)
    ah = _angles(torch.arange(h), 2 * nh)
    aw = _angles(torch.arange(w), 2 * nw)
    grid = torch.cat([
        at[:, None, None, :].expand(f, h, w, nt),
        ah[None, :, None, :].expand(f, h, w, nh),
        aw[None, None, :, :].expand(f, h, w, nw),
    ], dim=-1)
    return grid.reshape(f * h * w, head_dim // 2).to(device)


def audio_angles(length: int, head_dim: int, scale: float = AUDIO_TEMPORAL_SCALE, device=None) -> torch.Tensor:
    """[length, head_dim/2] float64 angles: only the temporal band rotates, the rest is zero angle."""
    nt, _, _ = band_sizes(head_dim)
    at = _angles(torch.arange(length), 2 * nt, scale)
    rest = torch.zeros(length, head_dim // 2 - nt, dtype=torch.float64)
    return torch.cat([at, rest], dim=-1).to(device)


class RopeTable:
    """cos/sin of one token grid, ready to rotate ``[B, L, H, D]`` queries or keys."""

    def __init__(self, angles: torch.Tensor, dtype: torch.dtype = torch.float32):
        self.cos = angles.cos().to(dtype)[None, :, None, :]
        self.sin = angles.sin().to(dtype)[None, :, None, :]

    def to(self, device=None, dtype=None) -> "RopeTable":
        out = object.__new__(RopeTable)
        out.cos = self.cos.to(device=device, dtype=dtype)
        out.sin = self.sin.to(device=device, dtype=dtype)
        return out

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        b, n, h, d = x.shape
        pairs = x.view(b, n, h, d // 2, 2)
        x0, x1 = pairs[..., 0], pairs[..., 1]
        cos, sin = self.cos[:, :n], self.sin[:, :n]
        return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1).reshape(b, n, h, d)
