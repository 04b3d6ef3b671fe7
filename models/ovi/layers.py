"""Layers of Ovi's twin Wan towers, named as Ovi's ``model.safetensors`` names them.

Numerics: the residual stream, norms and modulation run in float32 whatever the weight dtype;
matrix products run in the weights' compute dtype (float32, bfloat16, or bf16 over fp8 storage).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..common.attention import attention
from ..common.modulation import modulate
from .rope import RopeTable


def compute_dtype(layer: nn.Module) -> torch.dtype:
    """The dtype a layer multiplies in (fp8-stored layers declare theirs)."""
    return getattr(layer, "compute_dtype", None) or layer.weight.dtype


def lin(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return layer(x.to(compute_dtype(layer)))


class RMSNorm(nn.Module):
    """Wan RMSNorm: computed in float32, weight applied after."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight.float()


class LayerNorm(nn.Module):
    """Wan LayerNorm in float32; affine only where the checkpoint has weight and bias."""

    def __init__(self, dim: int, eps: float = 1e-6, affine: bool = False):
        super().__init__()
        self.dim, self.eps = dim, eps
        if affine:
            self.weight = nn.Parameter(torch.ones(dim))
            self.bias = nn.Parameter(torch.zeros(dim))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = None if self.weight is None else self.weight.float()
        b = None if self.bias is None else self.bias.float()
        return F.layer_norm(x.float(), (self.dim,), w, b, self.eps)


class Modulation(nn.Module):
    """Per-block learned offsets added to the shared time projection (``modulation.modulation``)."""

    def __init__(self, dim: int, num: int = 6):
        super().__init__()
        self.modulation = nn.Parameter(torch.zeros(1, num, dim))

    def forward(self, e0: torch.Tensor) -> torch.Tensor:
        return self.modulation.float() + e0


@dataclass
class TokenGroups:
    """Tokens sharing one timestep embedding: ``counts`` consecutive tokens per group, or all (None)."""

    counts: list[int] | None = None

    def expand(self, per_group: torch.Tensor) -> torch.Tensor:
        """[B, G, C] -> [B, L, C] (or [B, 1, C] broadcastable when every token shares one group)."""
        if self.counts is None:
            return per_group
        reps = torch.tensor(self.counts, device=per_group.device)
        return per_group.repeat_interleave(reps, dim=1, output_size=sum(self.counts))


class SelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, eps: float = 1e-6):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_q = RMSNorm(dim, eps)
        self.norm_k = RMSNorm(dim, eps)

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.num_heads, self.head_dim))  # [B, L, H, D]

    def forward(self, x: torch.Tensor, rope: RopeTable) -> torch.Tensor:
        dt = compute_dtype(self.q)
        q = rope.apply(self.heads(self.norm_q(lin(self.q, x)))).to(dt)
        k = rope.apply(self.heads(self.norm_k(lin(self.k, x)))).to(dt)
        v = self.heads(lin(self.v, x)).to(dt)
        out = attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return lin(self.o, out.transpose(1, 2).flatten(2))


class FusionCrossAttention(SelfAttention):
    """Text cross-attention plus attention to the other tower's tokens (paper 4.1).

    Query and output projections are shared by both; the other modality gets its own pre-norm,
    key/value projections and key norm. RoPE applies to the query and the other tower's keys only,
    and the two attention outputs are summed before ``o``.
    """

    def __init__(self, dim: int, num_heads: int, eps: float = 1e-6):
        super().__init__(dim, num_heads, eps)
        self.k_fusion = nn.Linear(dim, dim)
        self.v_fusion = nn.Linear(dim, dim)
        self.pre_attn_norm_fusion = LayerNorm(dim, eps, affine=True)
        self.norm_k_fusion = RMSNorm(dim, eps)

    def forward(self, x: torch.Tensor, context: torch.Tensor, own_rope: RopeTable,
                other: torch.Tensor, other_rope: RopeTable) -> torch.Tensor:
        dt = compute_dtype(self.q)
        q = self.heads(self.norm_q(lin(self.q, x)))
        k = self.heads(self.norm_k(lin(self.k, context))).to(dt)
        v = self.heads(lin(self.v, context)).to(dt)
        text = attention(q.to(dt).transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        other = self.pre_attn_norm_fusion(other)
        ko = other_rope.apply(self.heads(self.norm_k_fusion(lin(self.k_fusion, other)))).to(dt)
        vo = self.heads(lin(self.v_fusion, other)).to(dt)
        qr = own_rope.apply(q).to(dt)
        fused = attention(qr.transpose(1, 2), ko.transpose(1, 2), vo.transpose(1, 2))
        out = text.float() + fused.float()
        return lin(self.o, out.transpose(1, 2).flatten(2))


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, ffn_dim: int):
        super().__init__(nn.Linear(dim, ffn_dim), nn.GELU(approximate="tanh"), nn.Linear(ffn_dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lin(self[2], self[1](lin(self[0], x)))


class FusionBlock(nn.Module):
    """One Wan block of one tower; :class:`..fusion.OviFusion` interleaves the two towers' halves."""

    def __init__(self, dim: int, ffn_dim: int, num_heads: int, eps: float = 1e-6):
        super().__init__()
        self.norm1 = LayerNorm(dim, eps)
        self.self_attn = SelfAttention(dim, num_heads, eps)
        self.norm3 = LayerNorm(dim, eps, affine=True)
        self.cross_attn = FusionCrossAttention(dim, num_heads, eps)
        self.norm2 = LayerNorm(dim, eps)
        self.ffn = FeedForward(dim, ffn_dim)
        self.modulation = Modulation(dim, 6)

    def mod(self, e0: torch.Tensor, groups: TokenGroups) -> list[torch.Tensor]:
        """Shift/scale/gate for self-attention (0-2) and FFN (3-5), each [B, L or 1, C] float32."""
        return [groups.expand(m) for m in self.modulation(e0).unbind(2)]

    def self_attention(self, x: torch.Tensor, m: list[torch.Tensor], rope: RopeTable) -> torch.Tensor:
        y = self.self_attn(modulate(self.norm1(x), m[0], m[1]), rope)
        return x + y.float() * m[2]

    def cross_and_ffn(self, x: torch.Tensor, m: list[torch.Tensor], context: torch.Tensor,
                      rope: RopeTable, other: torch.Tensor, other_rope: RopeTable) -> torch.Tensor:
        x = x + self.cross_attn(self.norm3(x), context, rope, other, other_rope).float()
        y = self.ffn(modulate(self.norm2(x), m[3], m[4]))
        return x + y.float() * m[5]


class Head(nn.Module):
    def __init__(self, dim: int, out_features: int, eps: float = 1e-6):
        super().__init__()
        self.norm = LayerNorm(dim, eps)
        self.head = nn.Linear(dim, out_features)
        self.modulation = nn.Parameter(torch.zeros(1, 2, dim))

    def forward(self, x: torch.Tensor, e: torch.Tensor, groups: TokenGroups) -> torch.Tensor:
        shift, scale = (groups.expand(m) for m in (self.modulation.float()[None] + e[:, :, None]).unbind(2))
        return lin(self.head, modulate(self.norm(x), shift, scale)).float()


class ChannelLastConv1d(nn.Conv1d):
    """Conv1d over [B, L, C] inputs (MMAudio layout)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class ConvMLP(nn.Module):
    """SwiGLU MLP of k-wide convolutions (MMAudio), hidden = 2/3 * hidden rounded up to 256."""

    def __init__(self, dim: int, hidden_dim: int, kernel_size: int = 7, multiple_of: int = 256):
        super().__init__()
        hidden = int(2 * hidden_dim / 3)
        hidden = multiple_of * ((hidden + multiple_of - 1) // multiple_of)
        pad = kernel_size // 2
        self.w1 = ChannelLastConv1d(dim, hidden, kernel_size, padding=pad, bias=False)
        self.w2 = ChannelLastConv1d(hidden, dim, kernel_size, padding=pad, bias=False)
        self.w3 = ChannelLastConv1d(dim, hidden, kernel_size, padding=pad, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


def sinusoidal_embedding(dim: int, t: torch.Tensor) -> torch.Tensor:
    """Wan's [cos | sin] timestep embedding, in float64 as the reference computes it."""
    half = dim // 2
    t = t.to(torch.float64)
    freqs = torch.pow(10000, -torch.arange(half, dtype=torch.float64, device=t.device).div(half))
    angles = torch.outer(t, freqs)
    return torch.cat([angles.cos(), angles.sin()], dim=1)


def assert_even_heads(dim: int, num_heads: int) -> None:
    if dim % num_heads or (dim // num_heads) % 2:
        raise ValueError(f"dim {dim} must split into {num_heads} heads of even size")


__all__ = [
    "RMSNorm", "LayerNorm", "Modulation", "TokenGroups", "SelfAttention", "FusionCrossAttention",
    "FeedForward", "FusionBlock", "Head", "ChannelLastConv1d", "ConvMLP", "sinusoidal_embedding",
    "lin", "compute_dtype", "modulate", "assert_even_heads",
]
