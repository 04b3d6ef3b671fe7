"""Scaled dot-product attention with the masking rules every system here needs.

All attention in the pack calls :func:`attention`, so a kernel change (flash, fp8, SDPA backend
choice) happens in one place.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

NEG_INF = float("-inf")


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Boolean "may attend" -> additive bias (0 where allowed, -inf elsewhere)."""
    bias = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return bias.masked_fill(~allowed, NEG_INF)


def causal_mask(q_len: int, k_len: int | None = None, *, offset: int = 0, device=None) -> torch.Tensor:
    """Boolean [q_len, k_len] mask where query i (at absolute position offset+i) sees keys <= it."""
    k_len = q_len + offset if k_len is None else k_len
    qi = torch.arange(q_len, device=device)[:, None] + offset
    kj = torch.arange(k_len, device=device)[None, :]
    return kj <= qi


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    scale: float | None = None,
    empty_rows: bool = True,
) -> torch.Tensor:
    """SDPA over ``[B, H, L, D]`` tensors.

    ``mask`` is boolean (True = may attend) or additive (0 / -inf), broadcastable to
    ``[B, H, Lq, Lk]``. A query row whose keys are all masked returns exactly 0 — neither the
    NaN of a naive softmax nor the uniform average some kernels give. The guard never reads the
    mask back to the host, so masked attention can be captured in a CUDA graph; callers whose
    masks can have no empty row (key-padding masks with at least one real key) pass
    ``empty_rows=False`` to skip it.
    """
    if mask is None:
        return F.scaled_dot_product_attention(q, k, v, scale=scale)
    if mask.dtype == torch.bool:
        allowed = mask
        bias = additive_mask(mask, q.dtype)
    else:
        bias = mask.to(q.dtype)
        allowed = torch.isfinite(bias)
    if not empty_rows:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale)
    dead = ~allowed.any(dim=-1, keepdim=True)  # [.., Lq, 1]
    # Dead rows get a harmless finite bias, then their output is zeroed.
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.masked_fill(dead, 0.0), scale=scale)
    return out.masked_fill(dead, 0.0)


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[B, L, H*D] -> [B, H, L, D]."""
    b, n, _ = x.shape
    return x.view(b, n, heads, -1).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[B, H, L, D] -> [B, L, H*D]."""
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)
