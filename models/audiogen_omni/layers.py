"""Small building blocks of the MMDiT family (MMAudio's low_level.py / embeddings.py, as numerics)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ChannelLastConv1d(nn.Conv1d):
    """A Conv1d over ``[B, N, C]`` sequences (the checkpoints store plain Conv1d weights)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


def swiglu_width(hidden: int, multiple_of: int = 256) -> int:
    # SD3-reference FFN sizing that MMAudio keeps: 2/3 of the nominal width, rounded up to 256.
    hidden = int(2 * hidden / 3)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


class SwiGLU(nn.Module):
    """``w2(silu(w1 x) * w3 x)`` with linear (kernel 1) or channel-last conv projections."""

    def __init__(self, dim: int, hidden: int, kernel_size: int = 1, multiple_of: int = 256):
        super().__init__()
        width = swiglu_width(hidden, multiple_of)
        if kernel_size == 1:
            make = lambda i, o: nn.Linear(i, o, bias=False)  # noqa: E731
        else:
            make = lambda i, o: ChannelLastConv1d(  # noqa: E731
                i, o, kernel_size=kernel_size, padding=kernel_size // 2, bias=False
            )
        self.w1 = make(dim, width)
        self.w2 = make(width, dim)
        self.w3 = make(dim, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


def timestep_frequencies(size: int, max_period: float, device=None) -> torch.Tensor:
    # Exactly MMAudio's float32 table; v2 (max_period=1) multiplies it by 10000 afterwards.
    freqs = 1.0 / (10000 ** (torch.arange(0, size, 2, dtype=torch.float32, device=device) / size))
    return (10000 / max_period) * freqs


class TimestepEmbedder(nn.Module):
    """Fourier features ``[cos, sin](t * f)`` -> MLP (DiT; frequencies as MMAudio v1/v2)."""

    def __init__(self, dim: int, frequency_size: int, max_period: float):
        super().__init__()
        self.frequency_size = frequency_size
        self.max_period = max_period
        self.mlp = nn.Sequential(nn.Linear(frequency_size, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        freqs = timestep_frequencies(self.frequency_size, self.max_period, device=t.device)
        args = t[:, None].float() * freqs[None]
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        return self.mlp(emb.to(self.mlp[0].weight.dtype))


def sinusoidal_positions(length: int, dim: int, max_period: float = 10000.0, device=None) -> torch.Tensor:
    """Absolute sinusoidal table ``[length, dim]`` ([sin, cos] halves), as F5-TTS's text embedding."""
    half = dim // 2
    freqs = torch.exp(-torch.log(torch.tensor(max_period)) * torch.arange(half, dtype=torch.float32) / half)
    args = torch.arange(length, dtype=torch.float32)[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1).to(device)
