"""Synchformer visual encoder (the MotionFormer feature extractor MMAudio keeps from v-iashin/Synchformer).

Divided space-time ViT over 16-frame, 224 px segments (tubelets of 2 frames x 16x16 px), then a
per-frame spatial aggregation layer with a CLS token: 8 tokens per segment. Key names follow
``synchformer_state_dict.pth`` under ``vfeat_extractor.``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import torch
from torch import nn

from ..common.attention import attention
from ..common.checkpoint import CheckpointError, build_and_load, select

SEGMENT_FRAMES = 16  # MMAudio features_utils.encode_video_with_sync
SEGMENT_STEP = 8
SYNC_FPS = 25.0
SYNC_SIZE = 224


@dataclass(frozen=True)
class SynchformerConfig:
    embed_dim: int = 768  # divided_224_16x4.yaml
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: int = 4
    patch_size: int = 16
    tubelet: int = 2  # PATCH_SIZE_TEMP
    frames: int = 16  # temporal positions = frames // tubelet = TEMPORAL_RESOLUTION 8
    image_size: int = 224

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def time_tokens(self) -> int:
        return self.frames // self.tubelet


class PatchEmbed2D(nn.Module):
    """Unused by the forward pass; kept because the released file stores it."""

    def __init__(self, cfg: SynchformerConfig):
        super().__init__()
        self.proj = nn.Conv2d(3, cfg.embed_dim, kernel_size=cfg.patch_size, stride=cfg.patch_size)


class PatchEmbed3D(nn.Module):
    def __init__(self, cfg: SynchformerConfig):
        super().__init__()
        k = (cfg.tubelet, cfg.patch_size, cfg.patch_size)
        self.proj = nn.Conv3d(3, cfg.embed_dim, kernel_size=k, stride=k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, T, H, W] -> [B, t*h*w, D]
        return self.proj(x).flatten(2).transpose(1, 2)


class DividedAttention(nn.Module):
    """Attention along time (or space) only, with every token also seeing the CLS token."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, frames: int, along: str) -> torch.Tensor:
        b, n_tok, dim = x.shape
        h, f = self.heads, frames
        n = (n_tok - 1) // f
        q, k, v = (t.view(b, n_tok, h, -1).transpose(1, 2) for t in self.qkv(x).chunk(3, dim=-1))
        d = q.shape[-1]
        cls_out = attention(q[:, :, :1], k, v)  # CLS attends to every patch of every frame
        # group the patch tokens: time attention runs per spatial position, space attention per frame
        perm = (0, 3, 1, 2, 4) if along == "time" else (0, 2, 1, 3, 4)
        groups, length = (n, f) if along == "time" else (f, n)

        def grouped(t: torch.Tensor) -> torch.Tensor:
            return t[:, :, 1:].reshape(b, h, f, n, d).permute(*perm).reshape(b * groups, h, length, d)

        def with_cls(t: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
            cls = t[:, None, :, :1].expand(b, groups, h, 1, d).reshape(b * groups, h, 1, d)
            return torch.cat([cls, rest], dim=2)

        out = attention(grouped(q), with_cls(k, grouped(k)), with_cls(v, grouped(v)))
        inv = (0, 2, 3, 1, 4) if along == "time" else (0, 2, 1, 3, 4)
        out = out.reshape(b, groups, h, length, d).permute(*inv).reshape(b, h, f * n, d)
        out = torch.cat([cls_out, out], dim=2).transpose(1, 2).reshape(b, n_tok, dim)
        return self.proj(out)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class DividedSpaceTimeBlock(nn.Module):
    def __init__(self, cfg: SynchformerConfig):
        super().__init__()
        dim = cfg.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = DividedAttention(dim, cfg.num_heads)
        self.timeattn = DividedAttention(dim, cfg.num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, dim * cfg.mlp_ratio)
        self.norm3 = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        x = x + self.timeattn(self.norm3(x), frames, "time")  # time first, then space (vit_helper.py)
        x = x + self.attn(self.norm1(x), frames, "space")
        return x + self.mlp(self.norm2(x))


class SpatialAggregator(nn.TransformerEncoderLayer):
    """Per-frame pooling of the 14x14 patch grid through a CLS token (pre-norm encoder layer)."""

    def __init__(self, cfg: SynchformerConfig):
        super().__init__(d_model=cfg.embed_dim, nhead=cfg.num_heads, dim_feedforward=cfg.mlp_ratio * cfg.embed_dim,
                         dropout=0.0, activation=nn.GELU(), batch_first=True, norm_first=True, layer_norm_eps=1e-6)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B*t, h*w, D] -> [B*t, D]
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        return super().forward(x)[:, 0]


class MotionFormer(nn.Module):
    def __init__(self, cfg: SynchformerConfig):
        super().__init__()
        self.cfg = cfg
        dim = cfg.embed_dim
        self.patch_embed = PatchEmbed2D(cfg)
        self.patch_embed_3d = PatchEmbed3D(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.grid * cfg.grid + 1, dim))
        self.temp_embed = nn.Parameter(torch.zeros(1, cfg.time_tokens, dim))
        self.blocks = nn.ModuleList([DividedSpaceTimeBlock(cfg) for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.spatial_attn_agg = SpatialAggregator(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Segments ``[N, C, T, H, W]`` (normalised to [-1, 1]) -> ``[N, t, D]``."""
        n_seg = x.shape[0]
        cfg = self.cfg
        x = self.patch_embed_3d(x)
        t = x.shape[1] // (cfg.grid * cfg.grid)
        # "separate" positions: spatial table tiled over time + a temporal table repeated per patch
        pos = self.pos_embed[:, 1:].repeat(1, t, 1) + self.temp_embed[:, :t].repeat_interleave(cfg.grid * cfg.grid, 1)
        x = torch.cat([self.cls_token.expand(n_seg, -1, -1), x], dim=1)
        x = x + torch.cat([self.pos_embed[:, :1], pos], dim=1)
        for blk in self.blocks:
            x = blk(x, t)
        x = self.norm(x[:, 1:])  # (MotionFormer drops the CLS token before the norm)
        x = x.reshape(n_seg * t, cfg.grid * cfg.grid, -1)
        return self.spatial_attn_agg(x).view(n_seg, t, -1)


class Synchformer(nn.Module):
    def __init__(self, cfg: SynchformerConfig = SynchformerConfig()):
        super().__init__()
        self.vfeat_extractor = MotionFormer(cfg)

    @property
    def config(self) -> SynchformerConfig:
        return self.vfeat_extractor.cfg

    def forward(self, segments: torch.Tensor) -> torch.Tensor:
        """``[B, S, T, C, H, W]`` normalised segments -> ``[B, S, t, D]`` (MMAudio Synchformer.forward)."""
        b, s = segments.shape[:2]
        x = segments.permute(0, 1, 3, 2, 4, 5).flatten(0, 1)
        return self.vfeat_extractor(x).unflatten(0, (b, s))

    def encode_video(self, frames: torch.Tensor, *, segment_batch: int = 0) -> torch.Tensor:
        """Frames ``[B, T, 3, 224, 224]`` at 25 fps in [-1, 1] -> ``[B, S*8, D]``.

        Segments of 16 frames, stride 8 (MMAudio features_utils.encode_video_with_sync).
        """
        b, t = frames.shape[:2]
        if t < SEGMENT_FRAMES:
            raise ValueError(f"Synchformer needs at least {SEGMENT_FRAMES} frames, got {t}")
        s = (t - SEGMENT_FRAMES) // SEGMENT_STEP + 1
        segs = torch.stack([frames[:, i * SEGMENT_STEP : i * SEGMENT_STEP + SEGMENT_FRAMES] for i in range(s)], dim=1)
        flat = segs.flatten(0, 1).unsqueeze(1)  # [(B S), 1, T, C, H, W]
        step = segment_batch if segment_batch > 0 else flat.shape[0]
        out = torch.cat([self(flat[i : i + step]) for i in range(0, flat.shape[0], step)], dim=0)
        return out.reshape(b, s * out.shape[2], out.shape[3])


def detect_synchformer_config(sd: Mapping[str, torch.Tensor]) -> SynchformerConfig:
    key = "vfeat_extractor.patch_embed_3d.proj.weight"
    if key not in sd:
        raise CheckpointError(f"not a Synchformer checkpoint: missing {key}")
    dim, _, tub, patch, _ = sd[key].shape
    depth = len({k.split(".")[2] for k in sd if k.startswith("vfeat_extractor.blocks.")})
    # No per-head tensor in the file: heads follow the ViT-B convention of 64-channel heads.
    heads = max(1, dim // 64)
    # Missing tables fall back to the released sizes; the strict load then names them.
    pos = sd.get("vfeat_extractor.pos_embed")
    grid = int(round((pos.shape[1] - 1) ** 0.5)) if pos is not None else 224 // int(patch)
    temp = sd.get("vfeat_extractor.temp_embed")
    time_tokens = temp.shape[1] if temp is not None else 8
    return SynchformerConfig(embed_dim=int(dim), depth=depth, num_heads=int(heads), patch_size=int(patch),
                             tubelet=int(tub), frames=int(time_tokens * tub), image_size=int(grid * patch))


def load_synchformer(sd: Mapping[str, torch.Tensor], *, num_heads: Optional[int] = None,
                     dtype: Optional[torch.dtype] = None, context: str = "Synchformer checkpoint") -> Synchformer:
    """Keep ``vfeat_extractor.*`` (the released file also has audio/transformer parts) and load strictly."""
    sd = select(sd, "vfeat_extractor.", strip=False)
    cfg = detect_synchformer_config(sd)
    if num_heads is not None:
        cfg = SynchformerConfig(**{**cfg.__dict__, "num_heads": num_heads})
    return build_and_load(lambda: Synchformer(cfg), sd, context=context, dtype=dtype).eval()
