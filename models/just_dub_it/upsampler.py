"""LTX-2's 2x spatial latent upsampler (diffusers ``LTX2LatentUpsamplerModel``; same key names as
ltx_core's ``LatentUpsampler``), config from the file's safetensors metadata."""
from __future__ import annotations

import json
import math
from typing import Any, Mapping

import torch
from diffusers.pipelines.ltx2.latent_upsampler import LTX2LatentUpsamplerModel

from ..common.checkpoint import build_and_load


def upsampler_kwargs(metadata: Mapping[str, str] | None) -> dict[str, Any]:
    raw = (metadata or {}).get("config")
    cfg = json.loads(raw) if raw else {}
    # ltx_core LatentUpsamplerConfigurator defaults.
    return dict(
        in_channels=cfg.get("in_channels", 128),
        mid_channels=cfg.get("mid_channels", 512),
        num_blocks_per_stage=cfg.get("num_blocks_per_stage", 4),
        dims=cfg.get("dims", 3),
        spatial_upsample=cfg.get("spatial_upsample", True),
        temporal_upsample=cfg.get("temporal_upsample", False),
        rational_spatial_scale=float(cfg.get("spatial_scale", 2.0)),
        use_rational_resampler=bool(cfg.get("rational_resampler", False)),
    )


def _binomial_kernel(size: int = 5) -> torch.Tensor:
    k = torch.tensor([math.comb(size - 1, i) for i in range(size)], dtype=torch.float32)
    k2d = k[:, None] @ k[None, :]
    return (k2d / k2d.sum())[None, None]


def load_latent_upsampler(checkpoint: Mapping[str, torch.Tensor], metadata=None, *, dtype=None) -> LTX2LatentUpsamplerModel:
    kw = upsampler_kwargs(metadata)
    sd = dict(checkpoint)
    if kw["use_rational_resampler"] and "upsampler.blur_down.kernel" not in sd:
        sd["upsampler.blur_down.kernel"] = _binomial_kernel()  # a fixed constant some files omit
    model = build_and_load(lambda: LTX2LatentUpsamplerModel(**kw), sd, context="LTX-2 latent upsampler", dtype=dtype)
    return model.eval().requires_grad_(False)


@torch.no_grad()
def upsample_latent(upsampler, video_vae, latent: torch.Tensor) -> torch.Tensor:
    """Normalised latent -> 2x spatial normalised latent (ltx_pipelines.utils.upsample_video)."""
    shape = (1, -1, 1, 1, 1)
    mean = video_vae.latents_mean.to(latent).view(shape)
    std = video_vae.latents_std.to(latent).view(shape)
    p = next(upsampler.parameters())
    up = upsampler((latent * std + mean).to(p.device, p.dtype)).float().to(latent.device)
    return (up - mean) / std
