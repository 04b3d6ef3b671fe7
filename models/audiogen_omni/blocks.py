"""MMDiT blocks: per-stream adaLN blocks, joint attention over streams, the fused single stream.

Structure and key names follow MMAudio's transformer_layers.py, so its checkpoints load as saved.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from ..common.attention import attention, merge_heads
from ..common.modulation import modulate
from .layers import ChannelLastConv1d, SwiGLU
from .paapi import apply_rope


def key_mask(valid: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """[B, L] True = real token -> boolean attention mask [B, 1, 1, L] (None stays None)."""
    return None if valid is None else valid[:, None, None, :]


def _interleaved_to_thirds(t: torch.Tensor) -> torch.Tensor:
    """Rows of MMAudio's qkv projection, '(h d j)' with j (q/k/v) fastest -> '(j h d)': q, k, v in thirds."""
    return t.reshape(-1, 3, *t.shape[1:]).transpose(0, 1).reshape(t.shape)


def _thirds_to_interleaved(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(3, -1, *t.shape[1:]).transpose(0, 1).reshape(t.shape)


class ThirdsQKV(nn.Linear):
    """MMAudio's fused QKV projection, its output rows held in memory as [q | k | v] rather than the checkpoint's
    per-channel interleave, so ``v`` comes out with a unit last-dim stride and SDPA takes it as it is (a stride-3
    ``v`` drops it to the math path; copying it dense cost about 15 % of the attention call). Checkpoints keep
    MMAudio's order: rows are reordered as they load and reordered back in ``state_dict``."""

    def __init__(self, dim: int):
        super().__init__(dim, dim * 3, bias=True)
        with torch.no_grad():  # drawn in the checkpoint's order, so a seeded model is the same network as before
            self.weight.copy_(_interleaved_to_thirds(self.weight))
            self.bias.copy_(_interleaved_to_thirds(self.bias))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("weight", "bias"):
            key = prefix + name
            if key in state_dict and state_dict[key].shape[:1] == getattr(self, name).shape[:1]:
                state_dict[key] = _interleaved_to_thirds(state_dict[key])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        for name in ("weight", "bias"):
            tensor = destination[prefix + name]
            destination[prefix + name] = _thirds_to_interleaved(tensor if keep_vars else tensor.detach())


class QKNormAttention(nn.Module):
    """Concatenated QKV projection with per-head RMSNorm on Q and K (MMAudio SelfAttention)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = ThirdsQKV(dim)
        self.q_norm = nn.RMSNorm(dim // heads)
        self.k_norm = nn.RMSNorm(dim // heads)

    def project(self, x: torch.Tensor, rot: Optional[torch.Tensor]):
        b, n, _ = x.shape
        # MMAudio splits 'b n (h d j)'; ThirdsQKV holds the same rows as '(j h d)', so each of q/k/v is a plain
        # slice [B, H, N, D] with unit last-dim stride.
        qkv = self.qkv(x).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        q, k = self.q_norm(q), self.k_norm(k)
        if rot is not None:
            q, k = apply_rope(q, rot), apply_rope(k, rot)
        return q, k, v


class StreamBlock(nn.Module):
    """One stream's adaLN-modulated attention input and (unless ``pre_only``) its output/FFN half."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, *, pre_only: bool = False, kernel_size: int = 3):
        super().__init__()
        self.pre_only = pre_only
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False)
        self.attn = QKNormAttention(dim, heads)
        if pre_only:
            self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))
            return
        if kernel_size == 1:
            self.linear1 = nn.Linear(dim, dim)
        else:
            self.linear1 = ChannelLastConv1d(dim, dim, kernel_size=kernel_size, padding=kernel_size // 2)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False)
        self.ffn = SwiGLU(dim, int(dim * mlp_ratio), kernel_size=kernel_size)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def pre_attention(self, x: torch.Tensor, c: torch.Tensor, rot: Optional[torch.Tensor]):
        mod = self.adaLN_modulation(c).chunk(2 if self.pre_only else 6, dim=-1)
        h = modulate(self.norm1(x), mod[0], mod[1])
        return self.attn.project(h, rot), mod[2:]

    def post_attention(self, x: torch.Tensor, attn_out: torch.Tensor, mod: Sequence[torch.Tensor]) -> torch.Tensor:
        if self.pre_only:
            return x
        gate_msa, shift_mlp, scale_mlp, gate_mlp = mod
        x = x + self.linear1(attn_out) * gate_msa
        x = x + self.ffn(modulate(self.norm2(x), shift_mlp, scale_mlp)) * gate_mlp
        return x

    def forward(self, x, c, rot=None, valid: Optional[torch.Tensor] = None):
        (q, k, v), mod = self.pre_attention(x, c, rot)
        out = merge_heads(attention(q, k, v, key_mask(valid)))
        return self.post_attention(x, out, mod)


class JointBlock(nn.Module):
    """Joint attention over [latent | clip | text]; latent is modulated per frame, the others globally."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, *, pre_only: bool = False):
        super().__init__()
        self.pre_only = pre_only
        self.latent_block = StreamBlock(dim, heads, mlp_ratio, pre_only=False, kernel_size=3)
        self.clip_block = StreamBlock(dim, heads, mlp_ratio, pre_only=pre_only, kernel_size=3)
        self.text_block = StreamBlock(dim, heads, mlp_ratio, pre_only=pre_only, kernel_size=1)

    def forward(self, latent, clip_f, text_f, global_c, extended_c, rots, valid: Optional[torch.Tensor] = None):
        latent_rot, clip_rot, text_rot = rots
        x_qkv, x_mod = self.latent_block.pre_attention(latent, extended_c, latent_rot)
        c_qkv, c_mod = self.clip_block.pre_attention(clip_f, global_c, clip_rot)
        t_qkv, t_mod = self.text_block.pre_attention(text_f, global_c, text_rot)
        q, k, v = (torch.cat([x_qkv[i], c_qkv[i], t_qkv[i]], dim=2) for i in range(3))
        out = merge_heads(attention(q, k, v, key_mask(valid)))
        n_x, n_c = latent.shape[1], clip_f.shape[1]
        latent = self.latent_block.post_attention(latent, out[:, :n_x], x_mod)
        if not self.pre_only:
            clip_f = self.clip_block.post_attention(clip_f, out[:, n_x : n_x + n_c], c_mod)
            text_f = self.text_block.post_attention(text_f, out[:, n_x + n_c :], t_mod)
        return latent, clip_f, text_f


class FinalBlock(nn.Module):
    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.conv = ChannelLastConv1d(dim, out_dim, kernel_size=7, padding=3)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)
        return self.conv(modulate(self.norm(x), shift, scale))
