"""DualDub multimodal LM (paper 3.1-3.4).

The decoder trunk reads ``[speaker embedding, text tokens, fused aligned sequence]``; at fused
position i (built from background-audio token a_i and speech token s_i) two heads predict
a_{i+1} and s_{i+1}. Both streams start with BOS and end with EOS; a stream absent from the task
(speech in V2A, audio in TTS) is fed PAD and carries no loss.
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .aligner import CrossModalAligner, time_embedding
from .config import DualDubConfig
from .speaker import SpeakerEncoder


def build_trunk(lm: dict) -> nn.Module:
    """A transformers decoder (Qwen2/Llama...) from a config dict; only ``inputs_embeds`` are used."""
    from transformers import AutoConfig, AutoModel

    kwargs = {k: v for k, v in lm.items() if k != "model_type"}
    config = AutoConfig.for_model(lm["model_type"], **kwargs)
    return AutoModel.from_config(config, attn_implementation="sdpa")


@dataclass
class Conditions:
    """Everything the streams are conditioned on, batched. Build with :meth:`DualDub.conditions`."""

    speaker: torch.Tensor       # [B, speaker_dim]; zeros for V2A (paper 3.4)
    text_ids: torch.Tensor      # [B, Lt] long
    text_mask: torch.Tensor     # [B, Lt] bool
    video: torch.Tensor         # [B, Tv, video_dim]; zeros for TTS (paper 3.4)
    video_times: torch.Tensor   # [B, Tv] seconds
    video_mask: torch.Tensor    # [B, Tv] bool

    @property
    def batch(self) -> int:
        return self.text_ids.shape[0]


class DualDub(nn.Module):
    def __init__(self, cfg: DualDubConfig):
        super().__init__()
        self.config = cfg
        h = cfg.hidden_size
        self.speaker_encoder = SpeakerEncoder(cfg.n_mels, cfg.speaker_channels, cfg.speaker_dim,
                                              cfg.speaker_heads, cfg.codec_sample_rate)
        self.speaker_proj = nn.Linear(cfg.speaker_dim, h)
        self.text_embed = nn.Embedding(cfg.text_vocab_size, h)
        # Paper 3.2: two look-up tables isolate the background-audio and speech tracks.
        self.audio_embed = nn.Embedding(cfg.stream_vocab, h)
        self.speech_embed = nn.Embedding(cfg.stream_vocab, h)
        self.video_proj = nn.Linear(cfg.video_dim, h)
        self.aligner = CrossModalAligner(h, cfg.aligner_heads, cfg.aligner_layers)
        self.trunk = build_trunk(cfg.lm)
        self.audio_head = nn.Linear(h, cfg.stream_vocab)
        self.speech_head = nn.Linear(h, cfg.stream_vocab)

    # ---- conditioning -------------------------------------------------------------------
    def conditions(self, *, text_ids: torch.Tensor, speaker: torch.Tensor | None = None,
                   video: torch.Tensor | None = None, video_times: torch.Tensor | None = None,
                   text_mask: torch.Tensor | None = None, video_mask: torch.Tensor | None = None) -> Conditions:
        """Fill absent modalities the way the curriculum masks them: zero speaker, zero video."""
        cfg = self.config
        if text_ids.dim() == 1:
            text_ids = text_ids[None]
        b, dev = text_ids.shape[0], text_ids.device
        if speaker is None:
            speaker = torch.zeros(b, cfg.speaker_dim, device=dev)
        if video is None:
            video = torch.zeros(b, 1, cfg.video_dim, device=dev)
            video_times = torch.zeros(b, 1, device=dev)
        if video.dim() == 2:
            video = video[None]
        if video_times is None:
            raise ValueError("video_times is required with video features")
        if video_times.dim() == 1:
            video_times = video_times[None]
        return Conditions(
            speaker=speaker.reshape(b, -1).float(), text_ids=text_ids,
            text_mask=torch.ones_like(text_ids, dtype=torch.bool) if text_mask is None else text_mask,
            video=video.float(), video_times=video_times.float(),
            video_mask=torch.ones(video.shape[:2], dtype=torch.bool, device=dev) if video_mask is None else video_mask,
        )

    def prefix(self, cond: Conditions) -> tuple[torch.Tensor, torch.Tensor]:
        """[speaker, text] embeddings [B, 1+Lt, H] and their validity mask."""
        spk = self.speaker_proj(cond.speaker.to(self.speaker_proj.weight.dtype))[:, None]
        x = torch.cat([spk, self.text_embed(cond.text_ids)], dim=1)
        mask = torch.cat([torch.ones_like(cond.text_mask[:, :1]), cond.text_mask], dim=1)
        return x, mask

    def video_memory(self, cond: Conditions) -> torch.Tensor:
        """Projected video features with their timestamps expressed in codec-token positions."""
        v = self.video_proj(cond.video.to(self.video_proj.weight.dtype))
        te = time_embedding(cond.video_times * self.config.token_rate, v.shape[-1]).to(v.dtype)
        return v + te

    # ---- training-time forward ----------------------------------------------------------
    def forward(self, cond: Conditions, audio_in: torch.Tensor, speech_in: torch.Tensor,
                stream_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Stream inputs [B, L] (BOS + tokens) -> logits [B, L, V] for audio and speech."""
        fused = self.aligner(self.audio_embed(audio_in), self.speech_embed(speech_in),
                             self.video_memory(cond), cond.video_mask)
        prefix, pmask = self.prefix(cond)
        smask = torch.ones_like(audio_in, dtype=torch.bool) if stream_mask is None else stream_mask
        x = torch.cat([prefix, fused], dim=1)
        mask = torch.cat([pmask, smask], dim=1)
        hidden = self.run_trunk(x, mask)[0][:, prefix.shape[1]:]
        return self.audio_head(hidden), self.speech_head(hidden)

    def run_trunk(self, x: torch.Tensor, mask: torch.Tensor, *, cache=None, positions: torch.Tensor | None = None):
        """Padding inside the prefix is skipped by the mask and by positions counting valid tokens only,
        so a padded batch gives each sample the numbers it gets alone."""
        if positions is None:
            positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
        # transformers' Cache API: the argument is `cache` from 5.x (`past_key_values`, removed in 5.40, before).
        name = _cache_argument(type(self.trunk))
        out = self.trunk(inputs_embeds=x, attention_mask=mask.long(), position_ids=positions,
                         use_cache=cache is not None, **{name: cache})
        return out.last_hidden_state, getattr(out, name)



@functools.lru_cache(maxsize=None)
def _cache_argument(trunk_class) -> str:
    return "cache" if "cache" in inspect.signature(trunk_class.forward).parameters else "past_key_values"


def stream_loss(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """Mean cross-entropy over non-ignored targets (0 when a batch has none for this stream)."""
    valid = targets != ignore_index
    if not bool(valid.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[valid].float(), targets[valid])
