"""Visual conditioning: frame sampling and sizing, CLIP frame features (open_clip), Synchformer features.

Frames enter as ComfyUI IMAGE batches (``[T, H, W, 3]`` float in 0..1) with their frame rate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from .synchformer import SYNC_FPS, SYNC_SIZE, Synchformer

CLIP_FPS = 8.0  # MMAudio / AudioGen-Omni: CLIP features at 8 fps
# open_clip's OpenAI normalisation, used by MMAudio for DFN5B (features_utils.py).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# (open_clip architecture, input size): MMAudio's DFN5B and the paper's MetaCLIP bigG.
CLIP_ARCHS = {
    "dfn5b_h14_384": ("ViT-H-14-378-quickgelu", 384),
    "metaclip_bigg14": ("ViT-bigG-14-quickgelu", 224),
}


def sample_frames(frames: torch.Tensor, src_fps: float, dst_fps: float, duration_s: Optional[float] = None) -> torch.Tensor:
    """Frames at ``dst_fps`` picked from ``frames`` [T, ...] at ``src_fps`` (the frame shown at each instant)."""
    if src_fps <= 0 or dst_fps <= 0:
        raise ValueError(f"frame rates must be positive, got {src_fps} and {dst_fps}")
    total_s = frames.shape[0] / src_fps
    if duration_s is not None:
        total_s = min(total_s, duration_s)
    count = int(math.floor(total_s * dst_fps + 1e-6))
    idx = torch.floor(torch.arange(count, dtype=torch.float64) * (src_fps / dst_fps) + 1e-6).long()
    return frames[idx.clamp_max(frames.shape[0] - 1)]


def _to_nchw(images: torch.Tensor) -> torch.Tensor:
    return images.permute(0, 3, 1, 2).float()


def sync_input(images: torch.Tensor, fps: float, duration_s: Optional[float] = None) -> torch.Tensor:
    """IMAGE [T,H,W,3] -> Synchformer input [1, T25, 3, 224, 224] in [-1, 1].

    MMAudio eval_utils.sync_transform: resize the short side to 224 (bicubic), centre crop, normalise 0.5/0.5.
    """
    x = _to_nchw(sample_frames(images, fps, SYNC_FPS, duration_s))
    h, w = x.shape[-2:]
    s = SYNC_SIZE / min(h, w)
    nh, nw = max(SYNC_SIZE, round(h * s)), max(SYNC_SIZE, round(w * s))
    x = F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True)
    top, left = (nh - SYNC_SIZE) // 2, (nw - SYNC_SIZE) // 2
    x = x[..., top : top + SYNC_SIZE, left : left + SYNC_SIZE].clamp(0, 1)
    return ((x - 0.5) / 0.5).unsqueeze(0)


def clip_input(images: torch.Tensor, fps: float, size: int, duration_s: Optional[float] = None) -> torch.Tensor:
    """IMAGE -> [T8, 3, size, size] in 0..1 (MMAudio clip_transform squashes to a square, bicubic)."""
    x = _to_nchw(sample_frames(images, fps, CLIP_FPS, duration_s))
    x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=True)
    return x.clamp(0, 1)


@dataclass
class ClipFrameEncoder:
    """An open_clip model used for per-frame image embeddings (L2-normalised, as MMAudio does)."""

    model: torch.nn.Module
    image_size: int
    mean: tuple = CLIP_MEAN
    std: tuple = CLIP_STD

    @torch.no_grad()
    def encode(self, frames: torch.Tensor, batch: int = 64) -> torch.Tensor:
        """[T, 3, S, S] in 0..1 -> [T, D]."""
        p = next(self.model.parameters())
        mean = torch.tensor(self.mean, device=p.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=p.device).view(1, 3, 1, 1)
        out = []
        for i in range(0, frames.shape[0], batch):
            x = ((frames[i : i + batch].to(p.device) - mean) / std).to(p.dtype)
            out.append(self.model.encode_image(x, normalize=True).float())
        return torch.cat(out, dim=0)


def load_clip_encoder(arch_key: str, checkpoint: str, device="cpu") -> ClipFrameEncoder:
    """open_clip model from a local weights file (no downloads)."""
    import open_clip

    from ..common.checkpoint import load_file
    from ..common.clip_vision import check_open_clip_weights

    arch, size = CLIP_ARCHS[arch_key]
    # Read (memory-mapped) and check the file before building: an empty or foreign file must not cost a ViT-H.
    check_open_clip_weights(load_file(checkpoint), (open_clip.get_model_config(arch) or {}).get("vision_cfg"),
                            f"CLIP ({arch})")
    model = open_clip.create_model(arch, pretrained=str(checkpoint), device=device, force_image_size=size).eval()
    return ClipFrameEncoder(model, size)


@dataclass
class VisualFeatures:
    """Per-clip visual conditioning, cached and reused for every generation on that clip."""

    clip: Optional[torch.Tensor]  # [1, T8, Dc]
    sync: Optional[torch.Tensor]  # [1, S*8, Ds]
    duration_s: float


@torch.no_grad()
def extract_visual_features(
    images: torch.Tensor,
    fps: float,
    *,
    clip_encoder: Optional[ClipFrameEncoder] = None,
    synchformer: Optional[Synchformer] = None,
    duration_s: Optional[float] = None,
) -> VisualFeatures:
    length = images.shape[0] / fps
    duration = length if duration_s is None else min(duration_s, length)
    clip = sync = None
    if clip_encoder is not None:
        clip = clip_encoder.encode(clip_input(images, fps, clip_encoder.image_size, duration)).unsqueeze(0)
    if synchformer is not None:
        p = next(synchformer.parameters())
        sync = synchformer.encode_video(sync_input(images, fps, duration).to(p.device, p.dtype)).float()
    return VisualFeatures(clip, sync, duration)


def open_clip_from_config(config: dict, sd=None) -> ClipFrameEncoder:
    """An open_clip ``CLIP`` built from an explicit config (small/custom models; no registry, no download)."""
    import open_clip

    from ..common.checkpoint import load_strict

    from ..common.clip_vision import check_open_clip_weights

    cfg = dict(config)
    if sd is not None:  # the embedded config is checked against the weights' shapes before anything is built
        check_open_clip_weights(sd, cfg.get("vision_cfg"), "open_clip model")
    model = open_clip.CLIP(embed_dim=cfg["embed_dim"], vision_cfg=cfg["vision_cfg"], text_cfg=cfg["text_cfg"],
                           quick_gelu=cfg.get("quick_gelu", True))
    if sd is not None:
        load_strict(model, sd, context="open_clip model")
    return ClipFrameEncoder(model.eval(), int(cfg["vision_cfg"]["image_size"]))


@torch.no_grad()
def clip_text_features(encoder: ClipFrameEncoder, texts: list[str], tokenizer_arch: str = "ViT-H-14-378-quickgelu") -> torch.Tensor:
    """Per-token CLIP text features [B, 77, width], L2-normalised, before pooling (MMAudio patch_clip)."""
    import open_clip

    model = encoder.model
    p = next(model.parameters())
    ctx = model.positional_embedding.shape[0]
    tokens = open_clip.get_tokenizer(tokenizer_arch, context_length=ctx)(texts).to(p.device)
    x = model.token_embedding(tokens).to(p.dtype) + model.positional_embedding.to(p.dtype)
    x = model.transformer(x, attn_mask=model.attn_mask)
    return F.normalize(model.ln_final(x), dim=-1).float()
