"""The MMDiT family: MMAudio's network (v1/v2, loads released ``.pth`` keys as saved) and the
AudioGen-Omni extensions as config options (T5 text with a mask, lyrics/transcript stream with
phase-aligned RoPE, per-second start/duration embeddings, variable-length masks).

Conditioning is encoded once per clip (:meth:`MMDiT.encode_conditions`) and reused at every
sampling step (:meth:`MMDiT.predict_flow`), as MMAudio's preprocess_conditions/predict_flow split.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import FinalBlock, JointBlock, StreamBlock
from .layers import ChannelLastConv1d, SwiGLU, TimestepEmbedder
from .lyrics import LyricsEncoder, LyricsEncoderConfig
from .paapi import phase_aligned_rotations, rope_rotations
from .preprocess import latent_seq_len

SYNC_TOKENS_PER_SEGMENT = 8  # Synchformer: 16 frames -> 8 tokens (MMAudio networks.py)


@dataclass(frozen=True)
class MMDiTConfig:
    latent_dim: int
    clip_dim: int
    sync_dim: int
    text_dim: int
    hidden_dim: int
    depth: int
    fused_depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    text_seq_len: int = 77
    v2: bool = False
    # Default (8 s) sequence lengths; inputs of other lengths are accepted (variable duration).
    latent_seq_len: int = 250
    clip_seq_len: int = 64
    sync_seq_len: int = 192
    # Audio latent timeline: sample rate and samples per latent frame (31.25 Hz at 16k, ~43 Hz at 44.1k).
    sample_rate: int = 16000
    samples_per_latent: int = 512
    # AudioGen-Omni (paper 3.2-3.4). 0 disables each addition, giving plain MMAudio.
    lyrics_dim: int = 0
    lyrics_vocab: int = 0  # >0: the lyrics encoder (tokens -> features) is part of this network
    lyrics_blocks: int = 4
    timing_seconds: int = 0
    rope_theta: float = 10000.0

    @property
    def head_dim(self) -> int:
        return self.hidden_dim // self.num_heads

    @property
    def latent_rate(self) -> float:
        return self.sample_rate / self.samples_per_latent

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MMDiTConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def replace(self, **kw) -> "MMDiTConfig":
        return replace(self, **kw)


@dataclass
class Conditions:
    """Encoded conditioning, independent of the step: reused across the whole sampling run."""

    clip: torch.Tensor  # [B, Nc, D]
    sync: torch.Tensor  # [B, N, D] (upsampled to the latent length)
    text: torch.Tensor  # [B, Nt(+Nl), D]
    clip_c: torch.Tensor  # [B, D] pooled visual
    text_c: torch.Tensor  # [B, D] pooled text
    timing_c: Optional[torch.Tensor]  # [B, 2D] start/duration embeddings or None
    text_valid: Optional[torch.Tensor]  # [B, Nt(+Nl)] True = attend, or None (all)
    text_rope_from: int  # text-stream tokens from this index on get PAAPI rope (the lyrics)

    @property
    def batch(self) -> int:
        return self.clip.shape[0]

    def expand(self, batch: int) -> "Conditions":
        ex = lambda x: None if x is None else x.expand(batch, *x.shape[1:])  # noqa: E731
        return Conditions(ex(self.clip), ex(self.sync), ex(self.text), ex(self.clip_c), ex(self.text_c),
                          ex(self.timing_c), ex(self.text_valid), self.text_rope_from)

    @staticmethod
    def cat(a: "Conditions", b: "Conditions") -> "Conditions":
        """Stack two condition sets along the batch (cond + uncond in one forward)."""
        if a.text.shape[1] != b.text.shape[1] or a.text_rope_from != b.text_rope_from:
            raise ValueError("conditions with different text layouts cannot be batched together")

        def c(x, y):
            return None if x is None else torch.cat([x, y], dim=0)

        def valid(x, y):  # one side unmasked: every token of it may be attended
            if x is None and y is None:
                return None
            x = torch.ones(y.shape, dtype=torch.bool, device=y.device) if x is None else x
            y = torch.ones(x.shape, dtype=torch.bool, device=x.device) if y is None else y
            return torch.cat([x, y], dim=0)

        return Conditions(c(a.clip, b.clip), c(a.sync, b.sync), c(a.text, b.text), c(a.clip_c, b.clip_c),
                          c(a.text_c, b.text_c), c(a.timing_c, b.timing_c), valid(a.text_valid, b.text_valid),
                          a.text_rope_from)


def _masked_mean(x: torch.Tensor, valid: Optional[torch.Tensor]) -> torch.Tensor:
    if valid is None:
        return x.mean(dim=1)
    w = valid.to(x.dtype).unsqueeze(-1)
    return (x * w).sum(dim=1) / w.sum(dim=1).clamp_min(1.0)


def _pick(feat: torch.Tensor, empty: torch.Tensor, drop: Optional[torch.Tensor]) -> torch.Tensor:
    """Per-sample replacement of a condition by its learned empty feature (modality dropout)."""
    if drop is None:
        return feat
    return torch.where(drop.view(-1, *([1] * (feat.dim() - 1))), empty.to(feat.dtype).expand_as(feat), feat)


class MMDiT(nn.Module):
    def __init__(self, config: MMDiTConfig):
        super().__init__()
        self.config = cfg = config
        d = cfg.hidden_dim
        # v2 swaps SELU for SiLU and adds SiLU after the clip/text linears (MMAudio networks.py).
        act = nn.SiLU if cfg.v2 else nn.SELU
        self.audio_input_proj = nn.Sequential(
            ChannelLastConv1d(cfg.latent_dim, d, kernel_size=7, padding=3), act(), SwiGLU(d, d * 4, kernel_size=7)
        )
        clip_mid = [nn.SiLU()] if cfg.v2 else []
        self.clip_input_proj = nn.Sequential(nn.Linear(cfg.clip_dim, d), *clip_mid, SwiGLU(d, d * 4, kernel_size=3))
        self.sync_input_proj = nn.Sequential(
            ChannelLastConv1d(cfg.sync_dim, d, kernel_size=7, padding=3), act(), SwiGLU(d, d * 4, kernel_size=3)
        )
        self.text_input_proj = nn.Sequential(nn.Linear(cfg.text_dim, d), *clip_mid, SwiGLU(d, d * 4))
        self.clip_cond_proj = nn.Linear(d, d)
        self.text_cond_proj = nn.Linear(d, d)
        self.global_cond_mlp = SwiGLU(d, d * 4)
        self.sync_pos_emb = nn.Parameter(torch.zeros(1, 1, SYNC_TOKENS_PER_SEGMENT, cfg.sync_dim))
        self.final_layer = FinalBlock(d, cfg.latent_dim)
        if cfg.v2:
            # v2: 10000x higher timestep frequencies (frequency size = hidden, max_period 1).
            self.t_embed = TimestepEmbedder(d, frequency_size=d, max_period=1)
        else:
            self.t_embed = TimestepEmbedder(d, frequency_size=256, max_period=10000)
        n_joint = cfg.depth - cfg.fused_depth
        self.joint_blocks = nn.ModuleList(
            [JointBlock(d, cfg.num_heads, cfg.mlp_ratio, pre_only=(i == n_joint - 1)) for i in range(n_joint)]
        )
        self.fused_blocks = nn.ModuleList(
            [StreamBlock(d, cfg.num_heads, cfg.mlp_ratio, kernel_size=3) for _ in range(cfg.fused_depth)]
        )
        # Stored in the released files as frozen parameters (normalisation stats, learned empty features).
        self.latent_mean = nn.Parameter(torch.zeros(1, 1, cfg.latent_dim), requires_grad=False)
        self.latent_std = nn.Parameter(torch.ones(1, 1, cfg.latent_dim), requires_grad=False)
        self.empty_string_feat = nn.Parameter(torch.zeros(cfg.text_seq_len, cfg.text_dim), requires_grad=False)
        self.empty_clip_feat = nn.Parameter(torch.zeros(1, cfg.clip_dim))
        self.empty_sync_feat = nn.Parameter(torch.zeros(1, cfg.sync_dim))
        if cfg.lyrics_dim:
            self.lyrics_input_proj = nn.Sequential(nn.Linear(cfg.lyrics_dim, d), nn.SiLU(), SwiGLU(d, d * 4))
            self.empty_lyrics_feat = nn.Parameter(torch.zeros(1, cfg.lyrics_dim))
            if cfg.lyrics_vocab:
                self.lyrics_encoder = LyricsEncoder(
                    LyricsEncoderConfig(vocab_size=cfg.lyrics_vocab, dim=cfg.lyrics_dim, blocks=cfg.lyrics_blocks)
                )
        if cfg.timing_seconds:
            # Paper 3.3: start time and duration discretised into learnable per-second embeddings,
            # concatenated with the pooled text/visual features and fused by a shallow MLP.
            self.start_embed = nn.Embedding(cfg.timing_seconds + 1, d)
            self.duration_embed = nn.Embedding(cfg.timing_seconds + 1, d)
            self.global_fuse = nn.Linear(4 * d, d)

    # --- helpers ----------------------------------------------------------------------------

    @property
    def dtype(self) -> torch.dtype:
        return self.audio_input_proj[0].weight.dtype

    def latent_len_for(self, seconds: float) -> int:
        # MMAudio sequence_config.py latent_seq_len, in its float order (seconds * sr / hop / 2).
        return latent_seq_len(seconds, self.config.sample_rate, self.config.samples_per_latent)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.latent_mean) / self.latent_std

    def unnormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.latent_std + self.latent_mean

    def _seconds_index(self, s, batch: int, device) -> torch.Tensor:
        s = torch.as_tensor(s, dtype=torch.float32, device=device).reshape(-1).expand(batch)
        return s.floor().long().clamp(0, self.config.timing_seconds)

    # --- conditioning -----------------------------------------------------------------------

    def encode_lyrics(self, ids: torch.Tensor, mask: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids [B, L] (0 = padding, L = frame budget) -> (features [B, L, lyrics_dim], mask)."""
        if not hasattr(self, "lyrics_encoder"):
            raise ValueError("this MMDiT has no lyrics/transcript encoder (an MMAudio checkpoint?)")
        ids = ids.to(self.latent_mean.device)
        mask = (ids > 0) if mask is None else mask.to(ids.device)
        return self.lyrics_encoder(ids, mask), mask

    def encode_conditions(
        self,
        *,
        batch: int,
        latent_len: int,
        clip_f: Optional[torch.Tensor] = None,
        sync_f: Optional[torch.Tensor] = None,
        text_f: Optional[torch.Tensor] = None,
        text_mask: Optional[torch.Tensor] = None,
        lyrics_f: Optional[torch.Tensor] = None,
        lyrics_mask: Optional[torch.Tensor] = None,
        start_s=0.0,
        duration_s=None,
        drop: Optional[dict[str, torch.Tensor]] = None,
        clip_len: Optional[int] = None,
        sync_len: Optional[int] = None,
    ) -> Conditions:
        """Project every condition; a missing one (None) uses its learned empty feature.

        ``drop`` maps "clip"/"sync"/"text"/"lyrics" to a [B] bool tensor replacing those samples'
        features by the empty ones (training's modality dropout).
        """
        cfg, drop = self.config, drop or {}
        dev, dt = self.latent_mean.device, self.dtype
        if clip_f is None:
            n = clip_len or max(1, round(latent_len * cfg.clip_seq_len / cfg.latent_seq_len))
            clip_f = self.empty_clip_feat.unsqueeze(0).expand(batch, n, -1)
        if sync_f is None:
            n = sync_len or max(SYNC_TOKENS_PER_SEGMENT, SYNC_TOKENS_PER_SEGMENT * round(
                latent_len * cfg.sync_seq_len / cfg.latent_seq_len / SYNC_TOKENS_PER_SEGMENT))
            sync_f = self.empty_sync_feat.unsqueeze(0).expand(batch, n, -1)
        if text_f is None:
            text_f = self.empty_string_feat.unsqueeze(0).expand(batch, -1, -1)
            text_mask = None
        clip_f = _pick(clip_f.to(dev, dt), self.empty_clip_feat, drop.get("clip"))
        sync_f = _pick(sync_f.to(dev, dt), self.empty_sync_feat, drop.get("sync"))
        if drop.get("text") is not None:
            if self.empty_string_feat.shape[0] != text_f.shape[1]:
                raise ValueError("text dropout needs text features of the empty-string length")
            text_f = _pick(text_f.to(dev, dt), self.empty_string_feat.unsqueeze(0), drop["text"])
            if text_mask is not None:
                text_mask = text_mask | drop["text"].view(-1, 1)
        text_f = text_f.to(dev, dt)

        b, n_sync = sync_f.shape[0], sync_f.shape[1]
        if n_sync % SYNC_TOKENS_PER_SEGMENT:
            raise ValueError(f"sync features must come in segments of {SYNC_TOKENS_PER_SEGMENT} tokens, got {n_sync}")
        sync_f = sync_f.reshape(b, n_sync // SYNC_TOKENS_PER_SEGMENT, SYNC_TOKENS_PER_SEGMENT, -1) + self.sync_pos_emb
        sync_f = sync_f.flatten(1, 2)

        clip = self.clip_input_proj(clip_f)
        sync = self.sync_input_proj(sync_f)
        text = self.text_input_proj(text_f)
        # Paper 3.4.1 / MMAudio: Synchformer features upsampled to the latent rate, frame-aligned.
        sync = F.interpolate(sync.transpose(1, 2), size=latent_len, mode="nearest-exact").transpose(1, 2)
        clip_c = self.clip_cond_proj(clip.mean(dim=1))
        text_c = self.text_cond_proj(_masked_mean(text, text_mask))

        text_valid = text_mask
        rope_from = text.shape[1]
        if cfg.lyrics_dim:
            if lyrics_f is None:
                lyrics_f = self.empty_lyrics_feat.unsqueeze(0).expand(batch, latent_len, -1)
                lyrics_mask = None
            lyrics_f = _pick(lyrics_f.to(dev, dt), self.empty_lyrics_feat.unsqueeze(0), drop.get("lyrics"))
            if lyrics_mask is not None and drop.get("lyrics") is not None:
                lyrics_mask = lyrics_mask | drop["lyrics"].view(-1, 1)
            lyrics = self.lyrics_input_proj(lyrics_f)
            # Paper 3.4.1: lyrics/transcript tokens join the T5 tokens along the sequence.
            text = torch.cat([text, lyrics.expand(text.shape[0], -1, -1)], dim=1)
            if text_valid is not None or lyrics_mask is not None:
                tv = text_valid if text_valid is not None else torch.ones(text_f.shape[:2], dtype=torch.bool, device=dev)
                lv = lyrics_mask if lyrics_mask is not None else torch.ones(lyrics.shape[:2], dtype=torch.bool, device=dev)
                text_valid = torch.cat([tv.expand(text.shape[0], -1), lv.to(dev).expand(text.shape[0], -1)], dim=1)

        timing_c = None
        if cfg.timing_seconds:
            if duration_s is None:
                duration_s = latent_len / cfg.latent_rate
            timing_c = torch.cat([
                self.start_embed(self._seconds_index(start_s, clip.shape[0], dev)),
                self.duration_embed(self._seconds_index(duration_s, clip.shape[0], dev)),
            ], dim=-1)
        cond = Conditions(clip, sync, text, clip_c, text_c, timing_c, text_valid, rope_from)
        return cond.expand(batch) if cond.batch == 1 and batch > 1 else cond

    def empty_conditions(self, batch: int, latent_len: int, **kw) -> Conditions:
        """The unconditional branch: every modality at its learned empty feature."""
        return self.encode_conditions(batch=1, latent_len=latent_len, **kw).expand(batch)

    # --- the step ---------------------------------------------------------------------------

    def rotations(self, latent_len: int, clip_len: int, text_len: int, rope_from: int, device):
        hd, theta = self.config.head_dim, self.config.rope_theta
        latent_rot = rope_rotations(latent_len, hd, theta=theta, device=device)
        clip_rot = phase_aligned_rotations(clip_len, latent_len, hd, theta=theta, device=device)
        text_rot = None
        if rope_from < text_len:
            # PAAPI: identity rotations on T5 tokens, phase-aligned ones on the lyrics tokens.
            ident = rope_rotations(rope_from, hd, theta=theta, freq_scaling=0.0, device=device)
            lyr = phase_aligned_rotations(text_len - rope_from, latent_len, hd, theta=theta, device=device)
            text_rot = torch.cat([ident, lyr], dim=1)
        return latent_rot, clip_rot, text_rot

    def predict_flow(
        self,
        latent: torch.Tensor,
        t: torch.Tensor,
        cond: Conditions,
        latent_mask: Optional[torch.Tensor] = None,
        rots=None,
    ) -> torch.Tensor:
        """Velocity for normalised latents ``[B, N, C]`` at times ``t`` [B] (0 = noise, 1 = data)."""
        n = latent.shape[1]
        if cond.sync.shape[1] != n:
            raise ValueError(f"conditions were encoded for {cond.sync.shape[1]} latent frames, got {n}")
        if rots is None:
            rots = self.rotations(n, cond.clip.shape[1], cond.text.shape[1], cond.text_rope_from, latent.device)
        # Padded frames are held at zero so the convolutions see them as the sequence's end.
        keep = None if latent_mask is None else latent_mask.unsqueeze(-1).to(self.dtype)
        x = latent.to(self.dtype) if keep is None else latent.to(self.dtype) * keep
        x = self.audio_input_proj(x)
        x = x if keep is None else x * keep
        pooled = cond.clip_c + cond.text_c
        if cond.timing_c is not None:
            pooled = self.global_fuse(torch.cat([cond.clip_c, cond.text_c, cond.timing_c], dim=-1))
        global_c = self.t_embed(t.to(latent.device)).unsqueeze(1) + self.global_cond_mlp(pooled).unsqueeze(1)
        extended_c = global_c + cond.sync

        valid = None
        if latent_mask is not None or cond.text_valid is not None:
            b, dev = x.shape[0], x.device
            lv = latent_mask if latent_mask is not None else torch.ones(b, n, dtype=torch.bool, device=dev)
            cv = torch.ones(b, cond.clip.shape[1], dtype=torch.bool, device=dev)
            tv = cond.text_valid if cond.text_valid is not None else torch.ones(b, cond.text.shape[1], dtype=torch.bool, device=dev)
            valid = torch.cat([lv.expand(b, -1), cv, tv.expand(b, -1)], dim=1)

        clip, text = cond.clip, cond.text
        for block in self.joint_blocks:
            x, clip, text = block(x, clip, text, global_c, extended_c, rots, valid)
            x = x if keep is None else x * keep
        for block in self.fused_blocks:
            x = block(x, extended_c, rots[0], latent_mask)
            x = x if keep is None else x * keep
        # MMAudio conditions the final layer on global_c, not extended_c (its issue #55); kept for its weights.
        return self.final_layer(x, global_c)

    def forward(self, latent, t, *, clip_f=None, sync_f=None, text_f=None, text_mask=None,
                lyrics_f=None, lyrics_mask=None, latent_mask=None, start_s=0.0, duration_s=None, drop=None):
        cond = self.encode_conditions(
            batch=latent.shape[0], latent_len=latent.shape[1], clip_f=clip_f, sync_f=sync_f, text_f=text_f,
            text_mask=text_mask, lyrics_f=lyrics_f, lyrics_mask=lyrics_mask, start_s=start_s,
            duration_s=duration_s, drop=drop,
        )
        return self.predict_flow(latent, t, cond, latent_mask)
