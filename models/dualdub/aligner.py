"""Cross-modal aligner (paper 3.3).

Per layer: intra-modal causal cross-attention both ways (audio queries speech, speech queries
audio; position i sees the other stream up to i; residual add), then inter-modal non-causal
cross-attention (audio and speech query the video features; residual add). The two aligned
streams are fused into the one sequence the LM reads.

The same module runs over whole sequences (training) and one position at a time with a cache
(generation); both give the same numbers because every operation is causal or position-wise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from ..common.attention import attention, causal_mask, merge_heads, split_heads


def time_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of positions measured in codec tokens (fractional for video frames)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[..., None] * freqs
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[..., :1])], dim=-1)
    return emb


class CrossAttention(nn.Module):
    """Pre-norm cross-attention; keys/values can be projected once and cached."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q_norm = nn.LayerNorm(dim)
        self.kv_norm = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def project_kv(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = self.kv(self.kv_norm(context)).chunk(2, dim=-1)
        return split_heads(k, self.heads), split_heads(v, self.heads)

    def attend(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        q = split_heads(self.q(self.q_norm(x)), self.heads)
        return self.out(merge_heads(attention(q, k, v, mask)))


@dataclass
class LayerCache:
    audio_kv: tuple[torch.Tensor, torch.Tensor] | None = None   # audio as keys (speech queries it)
    speech_kv: tuple[torch.Tensor, torch.Tensor] | None = None  # speech as keys (audio queries it)
    video_kv_a: tuple[torch.Tensor, torch.Tensor] | None = None
    video_kv_s: tuple[torch.Tensor, torch.Tensor] | None = None


@dataclass
class AlignerCache:
    layers: list[LayerCache] = field(default_factory=list)
    length: int = 0


def _append(kv, new):
    if kv is None:
        return new
    return torch.cat([kv[0], new[0]], dim=2), torch.cat([kv[1], new[1]], dim=2)


class AlignerLayer(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.audio_from_speech = CrossAttention(dim, heads)   # causal
        self.speech_from_audio = CrossAttention(dim, heads)   # causal
        self.audio_from_video = CrossAttention(dim, heads)    # non-causal
        self.speech_from_video = CrossAttention(dim, heads)   # non-causal

    def forward(self, a, s, video, video_mask, *, cache: LayerCache | None = None, offset: int = 0):
        """a, s [B, L, D] at positions offset..offset+L-1; video [B, Tv, D]; video_mask [B, Tv] bool."""
        s_kv = self.audio_from_speech.project_kv(s)
        a_kv = self.speech_from_audio.project_kv(a)
        if cache is not None:
            cache.speech_kv = s_kv = _append(cache.speech_kv, s_kv)
            cache.audio_kv = a_kv = _append(cache.audio_kv, a_kv)
        causal = causal_mask(a.shape[1], s_kv[0].shape[2], offset=offset, device=a.device)
        a1 = a + self.audio_from_speech.attend(a, *s_kv, causal)
        s1 = s + self.speech_from_audio.attend(s, *a_kv, causal)

        if cache is not None and cache.video_kv_a is not None:
            va, vs = cache.video_kv_a, cache.video_kv_s
        else:
            va = self.audio_from_video.project_kv(video)
            vs = self.speech_from_video.project_kv(video)
            if cache is not None:
                cache.video_kv_a, cache.video_kv_s = va, vs
        vmask = None if video_mask is None else video_mask[:, None, None, :]
        a2 = a1 + self.audio_from_video.attend(a1, *va, vmask)
        s2 = s1 + self.speech_from_video.attend(s1, *vs, vmask)
        return a2, s2


class CrossModalAligner(nn.Module):
    def __init__(self, dim: int, heads: int, layers: int):
        super().__init__()
        self.dim = dim
        self.layers = nn.ModuleList(AlignerLayer(dim, heads) for _ in range(layers))
        self.fuse = nn.Linear(2 * dim, dim)

    def forward(self, audio_emb, speech_emb, video, video_mask=None, *, cache: AlignerCache | None = None):
        """Stream embeddings [B, L, D] (the next L positions) + video [B, Tv, D] -> fused [B, L, D].

        With ``cache`` the call continues where the previous one stopped.
        """
        offset = 0 if cache is None else cache.length
        if cache is not None and not cache.layers:
            cache.layers = [LayerCache() for _ in self.layers]
        pos = torch.arange(offset, offset + audio_emb.shape[1], device=audio_emb.device)
        te = time_embedding(pos, self.dim).to(audio_emb.dtype)
        a, s = audio_emb + te, speech_emb + te
        for i, layer in enumerate(self.layers):
            a, s = layer(a, s, video, video_mask, cache=None if cache is None else cache.layers[i], offset=offset)
        if cache is not None:
            cache.length += audio_emb.shape[1]
        return self.fuse(torch.cat([a, s], dim=-1))
