"""Visual conditioning: frame sampling and sizing, CLIP frame features (open_clip), Synchformer features.

Frames enter as ComfyUI IMAGE batches (``[T, H, W, 3]`` float in 0..1) with their frame rate.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from .preprocess import load_video_frames, sync_pixels, unit_float
from .synchformer import Synchformer

# open_clip's OpenAI normalisation, used by MMAudio for DFN5B (features_utils.py).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# (open_clip architecture, input size): MMAudio's DFN5B (frames resized to 384, eval_utils.py _CLIP_SIZE)
# and the paper's MetaCLIP bigG.
CLIP_ARCHS = {
    "dfn5b_h14_384": ("ViT-H-14-378-quickgelu", 384),
    "metaclip_bigg14": ("ViT-bigG-14-quickgelu", 224),
}


@dataclass
class ClipFrameEncoder:
    """An open_clip model used for per-frame image embeddings (L2-normalised, as MMAudio does)."""

    model: torch.nn.Module
    image_size: int
    mean: tuple = CLIP_MEAN
    std: tuple = CLIP_STD

    @torch.no_grad()
    def encode(self, frames: torch.Tensor, batch: int = 40) -> torch.Tensor:
        """[T, 3, S, S] in 0..1 -> [T, D] (features_utils.py encode_video_with_clip: 40 frames a chunk)."""
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
    duration_s: float  # what the selected frames cover (eval_utils.load_video shrinks the request to it)
    clip_indices: Optional[list] = None  # input frames fed to CLIP / Synchformer
    sync_indices: Optional[list] = None


@torch.no_grad()
def extract_visual_features(
    images: torch.Tensor,
    fps,
    *,
    clip_encoder: Optional[ClipFrameEncoder] = None,
    synchformer: Optional[Synchformer] = None,
    duration_s: Optional[float] = None,
) -> VisualFeatures:
    """IMAGE [T, H, W, 3] at ``fps`` -> CLIP (8 fps) and Synchformer (25 fps) features as MMAudio's demo
    computes them (frame choice, uint8 resizes and duration shrink: :mod:`.preprocess`)."""
    sync_size = synchformer.config.image_size if synchformer is not None else None
    clip_size = clip_encoder.image_size if clip_encoder is not None else None
    v = load_video_frames(images, fps, duration_s, clip_size=clip_size, sync_size=sync_size)
    clip = sync = None
    if v.clip_frames is not None:
        clip = clip_encoder.encode(unit_float(v.clip_frames)).unsqueeze(0)
    if v.sync_frames is not None:
        p = next(synchformer.parameters())
        x = sync_pixels(v.sync_frames).unsqueeze(0).to(p.device, p.dtype)
        sync = synchformer.encode_video(x, segment_batch=40).float()  # features_utils.py: 40 segments a batch
    return VisualFeatures(clip, sync, v.duration_s, v.clip_indices, v.sync_indices)


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
    # "input_size": the size frames are resized to when it differs from the model's (DFN5B: 384 on 378).
    return ClipFrameEncoder(model.eval(), int(cfg.get("input_size", cfg["vision_cfg"]["image_size"])))


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
