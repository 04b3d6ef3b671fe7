"""One Wan tower of Ovi: the video tower (Wan2.2-TI2V-5B design) or the audio tower (paper 4.1).

The two towers share the block design; they differ in patch embedding (3D conv vs MMAudio-style
1D conv + ConvMLP), RoPE (3D vs scaled 1D temporal band) and unpatchify.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .layers import (ChannelLastConv1d, ConvMLP, FusionBlock, Head, TokenGroups, assert_even_heads,
                     compute_dtype, lin, sinusoidal_embedding)
from .rope import AUDIO_TEMPORAL_SCALE, RopeTable, audio_angles, video_angles


@dataclass
class TowerConfig:
    kind: str  # "video" or "audio"
    dim: int = 3072
    ffn_dim: int = 14336
    freq_dim: int = 256
    num_heads: int = 24
    num_layers: int = 30
    in_dim: int = 48
    out_dim: int = 48
    patch_size: tuple[int, ...] = field(default_factory=lambda: (1, 2, 2))
    text_len: int = 512
    text_dim: int = 4096
    eps: float = 1e-6
    temporal_rope_scale: float = 1.0

    def __post_init__(self):
        if self.kind not in ("video", "audio"):
            raise ValueError(f"tower kind must be 'video' or 'audio', got {self.kind!r}")
        self.patch_size = tuple(self.patch_size)
        assert_even_heads(self.dim, self.num_heads)

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    def as_dict(self) -> dict:
        return asdict(self)


def video_config(**kw) -> TowerConfig:
    """Ovi 720x720 5 s video tower (ovi/configs/model/dit/video.json)."""
    return TowerConfig(kind="video", **kw)


def audio_config(**kw) -> TowerConfig:
    """Ovi audio tower (ovi/configs/model/dit/audio.json): 20-ch MMAudio latent, RoPE scaled by 31/157."""
    kw.setdefault("in_dim", 20)
    kw.setdefault("out_dim", 20)
    kw.setdefault("patch_size", (1,))
    kw.setdefault("temporal_rope_scale", AUDIO_TEMPORAL_SCALE)
    return TowerConfig(kind="audio", **kw)


@dataclass
class TowerInputs:
    """A tower's state entering the blocks."""

    x: torch.Tensor  # [B, L, dim] float32 residual stream
    grid: tuple[int, ...]  # (f, h, w) tokens for video, (L,) for audio
    rope: RopeTable
    e: torch.Tensor  # [B, G, dim] time embedding (head)
    e0: torch.Tensor  # [B, G, 6, dim] time projection (blocks)
    groups: TokenGroups
    context: torch.Tensor  # [B, text_len, dim]


class WanTower(nn.Module):
    def __init__(self, config: TowerConfig):
        super().__init__()
        self.config = c = config
        if c.kind == "audio":
            self.patch_embedding = nn.Sequential(
                ChannelLastConv1d(c.in_dim, c.dim, kernel_size=7, padding=3),
                nn.SiLU(),
                ConvMLP(c.dim, c.dim * 4, kernel_size=7),
            )
        else:
            self.patch_embedding = nn.Conv3d(c.in_dim, c.dim, kernel_size=c.patch_size, stride=c.patch_size)
        self.text_embedding = nn.Sequential(nn.Linear(c.text_dim, c.dim), nn.GELU(approximate="tanh"),
                                            nn.Linear(c.dim, c.dim))
        self.time_embedding = nn.Sequential(nn.Linear(c.freq_dim, c.dim), nn.SiLU(), nn.Linear(c.dim, c.dim))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(c.dim, c.dim * 6))
        self.blocks = nn.ModuleList(FusionBlock(c.dim, c.ffn_dim, c.num_heads, c.eps) for _ in range(c.num_layers))
        patch = 1
        for p in c.patch_size:
            patch *= p
        self.head = Head(c.dim, c.out_dim * patch, c.eps)

    # -- embeddings -------------------------------------------------------------------------
    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
        """Latent -> float32 tokens [B, L, dim] and the token grid."""
        c = self.config
        if c.kind == "audio":
            first = self.patch_embedding[0]
            tokens = self.patch_embedding(x.to(compute_dtype(first)))
            return tokens.float(), (tokens.shape[1],)
        tokens = self.patch_embedding(x.to(compute_dtype(self.patch_embedding)))
        grid = tuple(tokens.shape[2:])
        return tokens.flatten(2).transpose(1, 2).float(), grid

    def rope_for(self, grid: tuple[int, ...], device) -> RopeTable:
        c = self.config
        if c.kind == "audio":
            angles = audio_angles(grid[0], c.head_dim, c.temporal_rope_scale)
        else:
            angles = video_angles(*grid, c.head_dim)
        return RopeTable(angles.to(device))

    def time(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Timesteps [B, G] -> e [B, G, dim], e0 [B, G, 6, dim] (float32)."""
        b, g = t.shape
        sin = sinusoidal_embedding(self.config.freq_dim, t.flatten())
        h = self.time_embedding[1](lin(self.time_embedding[0], sin))
        e = lin(self.time_embedding[2], h).float()
        e0 = lin(self.time_projection[1], self.time_projection[0](e)).float()
        return e.view(b, g, -1), e0.view(b, g, 6, -1)

    def text(self, context: torch.Tensor) -> torch.Tensor:
        """Text features [B, Lt, text_dim] zero-padded to text_len (all attended, as Ovi does)."""
        c = self.config
        if context.shape[1] > c.text_len:
            raise ValueError(f"text context has {context.shape[1]} tokens, the model takes at most {c.text_len}")
        pad = context.new_zeros(context.shape[0], c.text_len - context.shape[1], context.shape[2])
        context = torch.cat([context, pad], dim=1)
        h = self.text_embedding[1](lin(self.text_embedding[0], context))
        return lin(self.text_embedding[2], h)

    def prepare(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor,
                first_frame_clean: bool = False) -> TowerInputs:
        tokens, grid = self.embed(x)
        b, n = tokens.shape[:2]
        t = t.to(tokens.device).reshape(-1).expand(b) if t.numel() in (1, b) else t
        if first_frame_clean:
            if self.config.kind != "video":
                raise ValueError("first_frame_clean applies to the video tower only")
            first = grid[1] * grid[2]
            # Image-to-video: the clean first latent frame is embedded at timestep 0 (Ovi engine).
            tg = torch.stack([torch.zeros_like(t), t], dim=1)
            groups = TokenGroups([first, n - first])
        else:
            tg, groups = t[:, None], TokenGroups(None)
        e, e0 = self.time(tg)
        return TowerInputs(tokens, grid, self.rope_for(grid, tokens.device), e, e0, groups, self.text(context))

    # -- output -----------------------------------------------------------------------------
    def finish(self, x: torch.Tensor, inputs: TowerInputs) -> torch.Tensor:
        out = self.head(x, inputs.e, inputs.groups)
        if self.config.kind == "audio":
            return out  # [B, L, out_dim]
        f, h, w = inputs.grid
        pt, ph, pw = self.config.patch_size
        c = self.config.out_dim
        out = out.view(out.shape[0], f, h, w, pt, ph, pw, c)
        out = out.permute(0, 7, 1, 4, 2, 5, 3, 6)
        return out.reshape(out.shape[0], c, f * pt, h * ph, w * pw)
