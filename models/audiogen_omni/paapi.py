"""Phase-aligned rotary positions (AudioGen-Omni 3.4 "PAAPI"; MMAudio's latent/clip RoPE).

Every temporally structured stream (audio latent, video frames, lyrics/transcript) gets RoPE whose
frequencies are scaled by ``latent_len / stream_len``, so token ``i`` of a stream sits at the same
phase as the audio frame at the same instant. Atemporal streams (T5 / CLIP text) get none.
"""
from __future__ import annotations

import torch

from ..common.rope import inverse_frequencies


def rope_rotations(
    length: int, head_dim: int, *, theta: float = 10000.0, freq_scaling: float = 1.0, device=None
) -> torch.Tensor:
    """``[1, length, head_dim/2, 2, 2]`` float32 rotation matrices, computed as MMAudio does."""
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head dim, got {head_dim}")
    pos = torch.arange(length, dtype=torch.float32, device=device)
    freqs = inverse_frequencies(head_dim, theta=theta, device=device)
    freqs = freqs * freq_scaling
    ang = pos[:, None] * freqs[None]
    cos, sin = torch.cos(ang), torch.sin(ang)
    rot = torch.stack([cos, -sin, sin, cos], dim=-1)
    return rot.view(1, length, head_dim // 2, 2, 2)


def phase_aligned_rotations(
    length: int, latent_len: int, head_dim: int, *, theta: float = 10000.0, device=None
) -> torch.Tensor:
    """Rotations for a stream of ``length`` tokens spanning the same time as ``latent_len`` latents."""
    return rope_rotations(length, head_dim, theta=theta, freq_scaling=latent_len / length, device=device)


def apply_rope(x: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive channel pairs of ``x`` [B, H, N, D] by ``rot`` [1, N, D/2, 2, 2] in float32."""
    xf = x.float().view(*x.shape[:-1], -1, 1, 2)
    out = rot[..., 0] * xf[..., 0] + rot[..., 1] * xf[..., 1]
    return out.reshape(x.shape).to(x.dtype)
