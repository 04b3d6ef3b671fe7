"""Adaptive LayerNorm (adaLN) helpers shared by the DiTs."""
from __future__ import annotations

import torch
from torch import nn


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``x * (1 + scale) + shift`` with per-sample (``[B, D]``) or per-token (``[B, L, D]``) params."""
    if shift.dim() == x.dim() - 1:
        shift, scale = shift.unsqueeze(1), scale.unsqueeze(1)
    return x * (1 + scale) + shift


def gate(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return x * (g.unsqueeze(1) if g.dim() == x.dim() - 1 else g)


class AdaLNModulation(nn.Module):
    """SiLU -> Linear producing ``chunks`` vectors (shift/scale/gate ...) from a conditioning vector."""

    def __init__(self, cond_dim: int, dim: int, chunks: int, *, zero_init: bool = True):
        super().__init__()
        self.chunks = chunks
        self.linear = nn.Linear(cond_dim, dim * chunks)
        if zero_init:  # DiT-style: each block starts as identity
            nn.init.zeros_(self.linear.weight)
            nn.init.zeros_(self.linear.bias)

    def forward(self, cond: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.linear(nn.functional.silu(cond)).chunk(self.chunks, dim=-1)
