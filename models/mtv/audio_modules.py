"""MST-ControlNet (MTV paper sec. 4.2) as the official code implements it.

Attribute names mirror the official SAT modules (mtv/sgm/models/transformer.py) so that the
audio weights load one-to-one; see ``convert.py``.

* ``AudioProjector``: one per stream (speech, effects, music): per-frame MLP over the wav2vec
  window, then a stride-2 temporal conv applied twice, first frame kept apart (49 -> 25 -> 13).
* ``AudioInteraction``: the interval stream's dual blocks, joint self-attention over
  [speech; (speech 2;) effects] tokens of each latent frame, adaLN from the time embedding.
* ``AudioLayerInjection``: per backbone layer, per-frame cross-attention (speech, second
  speaker, effects; no gate) and the holistic music scale/shift (paper eq. 3).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..common.attention import attention, merge_heads, split_heads
from .rope import apply_rope

AUDIO_HEAD_DIM = 16  # official Audio_Dual_Block: SelfAttention_Audio(768, 48 heads)


@dataclass(frozen=True)
class MSTConfig:
    num_layers: int = 42
    hidden_size: int = 3072  # backbone width
    num_heads: int = 48  # backbone heads; the cross-attentions use the backbone's head split
    time_embed_dim: int = 512
    token_width: int = 768  # official hard-coded audio token width
    audio_heads: int = 48
    context_tokens: int = 32
    proj_in_dim: int = 5 * 12 * 768  # window * wav2vec layers * wav2vec width
    proj_hidden: int = 512
    num_dual_blocks: int = 4  # the official BaseModel never forwards num_layers_dual: always 4
    multi_person: bool = False

    @classmethod
    def from_state_dict(cls, sd: Mapping[str, torch.Tensor], *, num_heads: int, prefix: str = "") -> "MSTConfig":
        """Every size from the audio weights (ours, after conversion); heads from the backbone."""
        p = prefix
        width = sd[p + "audio_proj.norm.weight"].shape[0]
        n_layers = 1 + max(int(k[len(p + "layers."):].split(".")[0]) for k in sd if k.startswith(p + "layers."))
        n_dual = 1 + max(
            int(k[len(p + "audio_combine.dual_blocks."):].split(".")[0])
            for k in sd
            if k.startswith(p + "audio_combine.dual_blocks.")
        )
        return cls(
            num_layers=n_layers,
            hidden_size=sd[p + "layers.0.audio_attn.query.weight"].shape[0],
            num_heads=num_heads,
            time_embed_dim=sd[p + "audio_combine.dual_blocks.0.adaLN_modulations.1.weight"].shape[1],
            token_width=width,
            audio_heads=max(1, width // AUDIO_HEAD_DIM),
            context_tokens=sd[p + "audio_proj.conv1.weight"].shape[0] // width,
            proj_in_dim=sd[p + "audio_proj.proj1.weight"].shape[1],
            proj_hidden=sd[p + "audio_proj.proj1.weight"].shape[0],
            num_dual_blocks=n_dual,
            multi_person=(p + "audio_vocal_embedding") in sd,
        )


class AudioProjector(nn.Module):
    """Official ``AudioProjModel``: [B, F, window, layers, C] -> [B, latent_frames, tokens, width]."""

    def __init__(self, in_dim: int, hidden: int, context_tokens: int, width: int):
        super().__init__()
        self.context_tokens, self.width = context_tokens, width
        self.proj1 = nn.Linear(in_dim, hidden)
        self.proj2 = nn.Linear(hidden, hidden)
        self.proj3 = nn.Linear(hidden, context_tokens * width)
        self.norm = nn.LayerNorm(width)
        self.conv1 = nn.Conv1d(context_tokens * width, context_tokens * width, kernel_size=2, stride=2)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        b, f = feats.shape[:2]
        x = torch.relu(self.proj1(feats.reshape(b * f, -1)))
        x = torch.relu(self.proj2(x))
        x = self.proj3(x).reshape(b, f, -1).transpose(1, 2)  # [B, tokens*width, F]
        for _ in range(2):
            x = self.downsample(x)
        x = x.transpose(1, 2).unflatten(-1, (self.context_tokens, self.width))
        return self.norm(x)

    def downsample(self, x: torch.Tensor) -> torch.Tensor:
        # An odd frame count keeps frame 0 apart, as the causal VAE does (4k+1 frames -> k+1 latents).
        if x.shape[-1] % 2 == 1:
            rest = self.conv1(x[..., 1:]) if x.shape[-1] > 1 else x[..., 1:]
            return torch.cat([x[..., :1], rest], dim=-1)
        return self.conv1(x)


class FusedSelfAttention(nn.Module):
    """Official ``SelfAttention_Audio``: fused [q; k; v] rows, plain scaled softmax, no mask."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.query_key_value = nn.Linear(width, 3 * width)
        self.dense = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (split_heads(t, self.heads) for t in self.query_key_value(x).chunk(3, dim=-1))
        return self.dense(merge_heads(attention(q, k, v)))


class TanhGeluMLP(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.dense_h_to_4h = nn.Linear(width, 4 * width)
        self.dense_4h_to_h = nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense_4h_to_h(F.gelu(self.dense_h_to_4h(x), approximate="tanh"))


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class AudioDualBlock(nn.Module):
    """Official ``Audio_Dual_Block``: speech streams share the vocal adaLN parameters."""

    def __init__(self, width: int, heads: int, time_embed_dim: int):
        super().__init__()
        self.vocal_layernorm = nn.LayerNorm(width, eps=1e-5)
        self.accm_layernorm = nn.LayerNorm(width, eps=1e-5)
        self.post_attention_layernorm = nn.LayerNorm(width, eps=1e-5)
        self.adaLN_modulations = nn.Sequential(nn.SiLU(), nn.Linear(time_embed_dim, 12 * width))
        self.attention = FusedSelfAttention(width, heads)
        self.mlp = TanhGeluMLP(width)

    def forward(self, speech: list[torch.Tensor], effect: torch.Tensor, emb: torch.Tensor):
        """``speech``: one or two [(B T), N, W]; ``emb``: [(B T), temb] (per frame)."""
        mods = self.adaLN_modulations(emb).chunk(12, dim=1)
        v_shift, v_scale, v_gate, v_shift2, v_scale2, v_gate2 = mods[:6]
        e_shift, e_scale, e_gate, e_shift2, e_scale2, e_gate2 = mods[6:]
        n = effect.shape[1]
        x = [_modulate(self.vocal_layernorm(s), v_shift, v_scale) for s in speech]
        x.append(_modulate(self.accm_layernorm(effect), e_shift, e_scale))
        out = self.attention(torch.cat(x, dim=1)).split(n, dim=1)
        streams = [s + v_gate[:, None] * o for s, o in zip(speech, out)] + [effect + e_gate[:, None] * out[-1]]
        x = [_modulate(self.post_attention_layernorm(s), v_shift2, v_scale2) for s in streams[:-1]]
        x.append(_modulate(self.post_attention_layernorm(streams[-1]), e_shift2, e_scale2))
        out = self.mlp(torch.cat(x, dim=1)).split(n, dim=1)
        gates = [v_gate2] * (len(streams) - 1) + [e_gate2]
        streams = [s + g[:, None] * o for s, g, o in zip(streams, gates, out)]
        return streams[:-1], streams[-1]


class AudioInteraction(nn.Module):
    """Official ``AudioCombineModel``: the interval stream's dual blocks."""

    def __init__(self, width: int, heads: int, time_embed_dim: int, num_blocks: int):
        super().__init__()
        self.dual_blocks = nn.ModuleList(AudioDualBlock(width, heads, time_embed_dim) for _ in range(num_blocks))

    def forward(self, speech: list[torch.Tensor], effect: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        for block in self.dual_blocks:
            speech, effect = block(speech, effect, emb)
        return torch.cat([*speech, effect], dim=1)


class FrameCrossAttention(nn.Module):
    """Official ``CrossAttention`` as the audio injection uses it: ``query`` / fused ``key_value``."""

    def __init__(self, hidden: int, heads: int, kv_width: int):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(hidden, hidden)
        self.key_value = nn.Linear(kv_width, 2 * hidden)
        self.dense = nn.Linear(hidden, hidden)

    def forward(self, x, tokens, norm_q: nn.Module, norm_k: nn.Module, rope: tuple[torch.Tensor, torch.Tensor]):
        """``x`` [(B T), n, hidden] attends to its own frame's ``tokens`` [(B T), m, width]."""
        q = norm_q(split_heads(self.query(x), self.heads))
        k, v = (split_heads(t, self.heads) for t in self.key_value(tokens).chunk(2, dim=-1))
        k = norm_k(k)
        # RoPE on the query only, with latent frame 0's positions for every frame (official mixin: freqs[:n]).
        q = apply_rope(q, *rope)
        return self.dense(merge_heads(attention(q, k, v)))


class AudioLayerInjection(nn.Module):
    """The audio step inside one backbone layer: between self-attention and the feed-forward."""

    def __init__(self, hidden: int, heads: int, width: int, multi_person: bool, eps: float = 1e-5):
        super().__init__()
        self.audio_input_layernorm = nn.LayerNorm(hidden, eps=eps)
        self.audio_attn = FrameCrossAttention(hidden, heads, width)
        if multi_person:
            self.audio_input_layernorm_second = nn.LayerNorm(hidden, eps=eps)
            self.audio_attn_second = FrameCrossAttention(hidden, heads, width)
        self.audio_input_layernorm_effect = nn.LayerNorm(hidden, eps=eps)
        self.audio_attn_effect = FrameCrossAttention(hidden, heads, width)
        self.audio_music_adaLn = nn.Linear(width, 2 * hidden)  # zero-initialised in the official code
        self.multi_person = multi_person

    def forward(
        self,
        img: torch.Tensor,
        audio: torch.Tensor,
        num_frames: int,
        norm_q: nn.Module,
        norm_k: nn.Module,
        rope: tuple[torch.Tensor, torch.Tensor],
        trace: dict | None = None,
    ) -> torch.Tensor:
        """``img`` [B, T*n, hidden]; ``audio`` [(B T), S*m, width] = [speech; (speech 2;) effects; music]."""
        b, tn, d = img.shape
        chunks = audio.chunk(4 if self.multi_person else 3, dim=1)
        streams = [("vocal", self.audio_input_layernorm, self.audio_attn, chunks[0])]
        if self.multi_person:
            streams.append(("vocal_1", self.audio_input_layernorm_second, self.audio_attn_second, chunks[1]))
        streams.append(("effect", self.audio_input_layernorm_effect, self.audio_attn_effect, chunks[-2]))
        out = img
        for name, norm, attn, tokens in streams:
            x = norm(img).reshape(b * num_frames, tn // num_frames, d)
            y = attn(x, tokens, norm_q, norm_k, rope)
            if trace is not None:
                trace[f"audio_attn_out_{name}"] = y
            out = out + y.reshape(b, tn, d)
        music = chunks[-1].reshape(b, -1, chunks[-1].shape[-1]).mean(dim=1)
        scale, shift = self.audio_music_adaLn(music)[:, None].chunk(2, dim=-1)
        return out * (1 + scale) + shift


class MSTControlNet(nn.Module):
    """Projectors + interval-stream interaction + the per-layer injections."""

    def __init__(self, config: MSTConfig):
        super().__init__()
        c = self.config = config
        proj = lambda: AudioProjector(c.proj_in_dim, c.proj_hidden, c.context_tokens, c.token_width)  # noqa: E731
        if c.multi_person:
            self.audio_vocal_embedding = nn.Parameter(torch.zeros(c.token_width))
            self.audio_vocal_embedding_1 = nn.Parameter(torch.zeros(c.token_width))
        self.audio_proj = proj()
        self.audio_proj_effect = proj()
        self.audio_proj_music = proj()
        self.audio_combine = AudioInteraction(c.token_width, c.audio_heads, c.time_embed_dim, c.num_dual_blocks)
        self.layers = nn.ModuleList(
            AudioLayerInjection(c.hidden_size, c.num_heads, c.token_width, c.multi_person) for _ in range(c.num_layers)
        )

    def project(self, vocal, effect, music, vocal_1=None) -> dict[str, torch.Tensor]:
        """wav2vec windows [B, F, 5, layers, C] per stream -> tokens [B, T, m, width]."""
        tokens = {
            "vocal": self.audio_proj(vocal),
            "effect": self.audio_proj_effect(effect),
            "music": self.audio_proj_music(music),
        }
        if self.config.multi_person:
            if vocal_1 is None:
                raise ValueError("the multi-person MTV model needs a second speech stream (vocal_1)")
            tokens["vocal_1"] = self.audio_proj(vocal_1)
        return tokens

    def combine(self, tokens: dict[str, torch.Tensor], emb: torch.Tensor, trace: dict | None = None) -> torch.Tensor:
        """Projected tokens + time embedding -> the per-frame tensor every layer receives: [(B T), S*m, width]."""
        b, t = tokens["vocal"].shape[:2]
        speech = [tokens["vocal"]]
        if self.config.multi_person:
            speech = [tokens["vocal"] + self.audio_vocal_embedding, tokens["vocal_1"] + self.audio_vocal_embedding_1]
        speech = [s.flatten(0, 1) for s in speech]
        combined = self.audio_combine(speech, tokens["effect"].flatten(0, 1), emb.repeat_interleave(t, dim=0))
        if trace is not None:
            trace["combined"] = combined
        return torch.cat([combined, tokens["music"].flatten(0, 1)], dim=1)

    def encode(self, vocal, effect, music, emb: torch.Tensor, vocal_1=None, trace: dict | None = None):
        tokens = self.project(vocal, effect, music, vocal_1)
        if trace is not None:
            trace.update({f"tokens_{k}": v for k, v in tokens.items()})
        return self.combine(tokens, emb, trace)
