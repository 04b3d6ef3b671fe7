"""Adaptive LayerNorm (adaLN) helpers shared by the DiTs."""
from __future__ import annotations

import torch


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``x * (1 + scale) + shift`` with per-sample (``[B, D]``) or per-token (``[B, L, D]``) params."""
    if shift.dim() == x.dim() - 1:
        shift, scale = shift.unsqueeze(1), scale.unsqueeze(1)
    return x * (1 + scale) + shift


def gate(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return x * (g.unsqueeze(1) if g.dim() == x.dim() - 1 else g)
