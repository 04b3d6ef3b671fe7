"""Attention processor for the LTX-2 blocks that routes every attention through the pack's kernel
and adds JUST-DUB-IT's modality isolation to the audio<->video cross-attention.

diffusers' top-level forward passes ``None`` as the a2v / v2a masks, so the masks live in a
:class:`CrossModalMasks` object owned by one model wrapper and read by its processors.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.models.transformers.transformer_ltx2 import (
    apply_interleaved_rotary_emb,
    apply_split_rotary_emb,
)

from ..common.attention import attention, merge_heads, split_heads


@dataclass
class CrossModalMasks:
    """Additive (0 / -inf) or boolean masks: a2v [Nv, Na] (video queries), v2a [Na, Nv]."""

    a2v: torch.Tensor | None = None
    v2a: torch.Tensor | None = None

    def clear(self) -> None:
        self.a2v = self.v2a = None


def _rotate(x: torch.Tensor, freqs, rope_type: str) -> torch.Tensor:
    if rope_type == "split":
        return apply_split_rotary_emb(x, freqs)
    return apply_interleaved_rotary_emb(x, freqs)


class LTX2MaskedAttnProcessor:
    """LTX-2 attention (q/k RMSNorm, separate q/k RoPE, optional per-head gates) over
    :func:`models.common.attention.attention`; ``which`` selects a stored cross-modal mask."""

    def __init__(self, masks: CrossModalMasks | None = None, which: str | None = None):
        self.masks = masks
        self.which = which

    def _mask(self, passed: torch.Tensor | None) -> torch.Tensor | None:
        if passed is not None or self.masks is None or self.which is None:
            return passed
        return getattr(self.masks, self.which)

    def __call__(
        self,
        attn,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        query_rotary_emb=None,
        key_rotary_emb=None,
    ) -> torch.Tensor:
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        query = attn.norm_q(attn.to_q(hidden_states))
        key = attn.norm_k(attn.to_k(context))
        value = attn.to_v(context)
        if query_rotary_emb is not None:
            query = _rotate(query, query_rotary_emb, attn.rope_type)
            key = _rotate(key, key_rotary_emb if key_rotary_emb is not None else query_rotary_emb, attn.rope_type)

        mask = self._mask(attention_mask)
        if mask is not None and mask.dim() == 3:  # [B, Lq, Lk] -> broadcast over heads
            mask = mask[:, None]
        out = attention(split_heads(query, attn.heads), split_heads(key, attn.heads), split_heads(value, attn.heads), mask)
        out = merge_heads(out).to(query.dtype)

        if attn.to_gate_logits is not None:
            # LTX-2.x per-head gates: 2*sigmoid so zero logits leave the output unchanged.
            gates = 2.0 * torch.sigmoid(attn.to_gate_logits(hidden_states))
            out = (out.unflatten(2, (attn.heads, -1)) * gates.unsqueeze(-1)).flatten(2)
        return attn.to_out[1](attn.to_out[0](out))


CROSS_MODAL_ATTENTION = {"audio_to_video_attn": "a2v", "video_to_audio_attn": "v2a"}


def install_processors(transformer: torch.nn.Module, masks: CrossModalMasks) -> None:
    """Give every LTX-2 attention module our processor; the cross-modal ones read ``masks``."""
    for block in transformer.transformer_blocks:
        for name in ("attn1", "attn2", "audio_attn1", "audio_attn2", *CROSS_MODAL_ATTENTION):
            getattr(block, name).set_processor(LTX2MaskedAttnProcessor(masks, CROSS_MODAL_ATTENTION.get(name)))
