"""Rotary position embeddings: 1-D and 3-D tables, frequency scaling, partial application.

Two pairings exist in the wild and both are kept: ``interleaved`` rotates (x0,x1),(x2,x3)...
(Wan, MMAudio, Ovi), ``half`` rotates (x_i, x_{i+D/2}) (LLaMA, LTX-2 "split", CogVideoX).
"""
from __future__ import annotations

import torch


def rope_angles(
    positions: torch.Tensor, dim: int, *, theta: float = 10000.0, scale: float = 1.0,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Angles ``[..., L, dim/2]`` for ``positions`` ``[..., L]``.

    ``scale`` multiplies the frequencies: Ovi scales the audio band by 31/157 so audio latent time
    lines up with video latent time (Ovi paper 4.1); AudioGen-Omni's PAAPI aligns each stream to
    the audio-latent timeline the same way (paper 3.4).
    """
    if dim % 2:
        raise ValueError(f"RoPE dimension must be even, got {dim}")
    inv = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=dtype, device=positions.device) / dim))
    return positions.to(dtype)[..., None] * (inv * scale)


def rope_angles_3d(
    grid: tuple[int, int, int], dims: tuple[int, int, int], *, theta: float = 10000.0,
    scales: tuple[float, float, float] = (1.0, 1.0, 1.0), device=None, dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Angles ``[F*H*W, sum(dims)/2]`` for a (frames, height, width) token grid, bands concatenated."""
    f, h, w = grid
    axes = [torch.arange(n, device=device) for n in grid]
    ff, hh, ww = torch.meshgrid(*axes, indexing="ij")
    bands = [
        rope_angles(pos.reshape(-1), d, theta=theta, scale=s, dtype=dtype)
        for pos, d, s in zip((ff, hh, ww), dims, scales)
    ]
    return torch.cat(bands, dim=-1)


def apply_rope(x: torch.Tensor, angles: torch.Tensor, *, pairing: str = "interleaved") -> torch.Tensor:
    """Rotate the first ``2*angles.shape[-1]`` channels of ``x`` ``[..., L, D]``; the rest pass through.

    The rotation runs in the angles' dtype (float64 tables give the reference's double-precision
    RoPE) and the result is cast back to ``x``'s dtype.
    """
    rot = angles.shape[-1] * 2
    head, tail = x[..., :rot], x[..., rot:]
    cos, sin = angles.cos(), angles.sin()
    h = head.to(angles.dtype)
    if pairing == "interleaved":
        a, b = h[..., 0::2], h[..., 1::2]
        out = torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)
    elif pairing == "half":
        a, b = h[..., : rot // 2], h[..., rot // 2:]
        out = torch.cat((a * cos - b * sin, a * sin + b * cos), dim=-1)
    else:
        raise ValueError(f"unknown RoPE pairing {pairing!r}")
    out = out.to(x.dtype)
    return out if tail.shape[-1] == 0 else torch.cat((out, tail), dim=-1)


def apply_rope_range(
    x: torch.Tensor, angles: torch.Tensor, start: int, stop: int, *, pairing: str = "interleaved"
) -> torch.Tensor:
    """RoPE on tokens ``start:stop`` of ``x`` ``[..., L, D]`` only (e.g. a temporal stream inside a
    joint sequence whose text tokens carry no position)."""
    rotated = apply_rope(x[..., start:stop, :], angles, pairing=pairing)
    return torch.cat((x[..., :start, :], rotated, x[..., stop:, :]), dim=-2)
