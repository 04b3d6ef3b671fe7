"""MTV sampling: v-prediction DPM++ 2M (SDE) over a zero-SNR DDPM schedule, batched CFG, chunks.

Official settings (configs/cogvideox_5b.yaml, mtv/sgm/modules/diffusionmodules/{sampling,guiders}.py,
mtv/sample_video.py): ``VPSDEDPMPP2MSampler`` 50 steps on ``ZeroSNRDDPMDiscretization`` (diffusers'
``CogVideoXDPMScheduler`` is the same solver); ``DynamicCFG`` whose scale is overwritten by a
constant 3.5; the unconditional pass has zeroed text (``force_uc_zero_embeddings=["txt"]``) and
zeroed audio features; long audio runs in 49-frame chunks, each after the first starting from
2 clean latents of the previous chunk's last 5 frames (paper sec. 5.5).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from diffusers import CogVideoXDPMScheduler

from ..common.chunking import overlap_add
from .transformer import MTVTransformer

SCHEDULER_CONFIG = dict(  # CogVideoX-5B(-I2V) scheduler_config.json; snr_shift_scale 1.0 as MTV's yaml
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    prediction_type="v_prediction",
    rescale_betas_zero_snr=True,
    timestep_spacing="trailing",
    snr_shift_scale=1.0,
    set_alpha_to_one=True,
    clip_sample=False,
    steps_offset=0,
)
DEFAULT_STEPS = 50
DEFAULT_GUIDANCE = 3.5  # guiders.DynamicCFG.__call__ overwrites its schedule with 3.5
CLIP_FRAMES = 49
OVERLAP_FRAMES = 5  # frames re-encoded into the next chunk's 2 clean latents
CARRIED_LATENTS = 2
STREAMS = ("vocal", "effect", "music", "vocal_1")


def make_scheduler() -> CogVideoXDPMScheduler:
    return CogVideoXDPMScheduler(**SCHEDULER_CONFIG)


@dataclass
class AudioControl:
    """The MST-ControlNet input: per-stream wav2vec windows [S, 5, layers, D] on one frame grid."""

    vocal: torch.Tensor
    effect: torch.Tensor
    music: torch.Tensor
    vocal_1: torch.Tensor | None = None
    num_frames: int = 0  # real video length (the windows are zero-padded to 1 + 48k frames)
    fps: float = 24.0

    def streams(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k) for k in STREAMS if getattr(self, k) is not None}


def num_chunks(num_frames: int, clip: int = CLIP_FRAMES, overlap: int = OVERLAP_FRAMES) -> int:
    # The official count max((S-8)//(clip-overlap), 1) can leave the last frames of a long clip
    # uncovered; this one covers every real frame with the same chunk layout.
    return 1 + max(0, math.ceil((num_frames - clip) / (clip - overlap)))


def chunk_windows(windows: torch.Tensor, index: int, clip: int = CLIP_FRAMES, overlap: int = OVERLAP_FRAMES):
    """Frames [index*(clip-overlap), +clip) of one stream, zero-padded at the end (as the official loop)."""
    start = index * (clip - overlap)
    part = windows[start:start + clip]
    if part.shape[0] < clip:
        part = torch.cat([part, part.new_zeros(clip - part.shape[0], *part.shape[1:])], dim=0)
    return part


def assemble_chunks(frames: list[torch.Tensor], num_frames: int, overlap: int = OVERLAP_FRAMES) -> torch.Tensor:
    """Decoded chunks [F, ...] -> one video: later chunks drop their ``overlap`` re-generated frames
    (the official loop; models/common/chunking.py, curve "previous")."""
    starts = [i * (frames[0].shape[0] - overlap) for i in range(len(frames))]
    total = starts[-1] + frames[-1].shape[0]
    return overlap_add(frames, starts, min(num_frames, total) if num_frames > 0 else total, dim=0, curve="previous")


@torch.no_grad()
def sample_chunk(
    model: MTVTransformer,
    context: torch.Tensor,
    windows: dict[str, torch.Tensor],
    latent_shape: tuple[int, int, int, int],
    *,
    steps: int = DEFAULT_STEPS,
    guidance: float = DEFAULT_GUIDANCE,
    generator: torch.Generator,
    negative_context: torch.Tensor | None = None,
    image_latents: torch.Tensor | None = None,
    clean_prefix: torch.Tensor | None = None,
    callback: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """One 13-latent chunk [1, T, C, h, w]. ``windows``: per-stream [clip, 5, layers, D]."""
    device = next(model.backbone.parameters()).device
    scheduler = make_scheduler()
    scheduler.set_timesteps(steps, device=device)
    cfg = guidance != 1.0
    feats = {k: v[None] for k, v in windows.items()}
    if cfg:
        feats = {k: torch.cat([torch.zeros_like(v), v]) for k, v in feats.items()}  # zeroed audio: uncond
        neg = torch.zeros_like(context) if negative_context is None else negative_context
        context = torch.cat([neg.to(context), context])
    context = context.to(device)
    tokens = model.project_audio(feats, device)
    batch = 2 if cfg else 1
    if image_latents is not None:
        image_latents = image_latents.to(device).expand(batch, *image_latents.shape[1:])
    latents = torch.randn((1, *latent_shape), generator=generator).to(device)
    k = 0 if clean_prefix is None else clean_prefix.shape[1]
    if k:
        clean_prefix = clean_prefix.to(device, torch.float32)
    old_x0 = None
    timesteps = scheduler.timesteps
    for i, t in enumerate(timesteps):
        if k:
            latents[:, :k] = clean_prefix
        x_in = latents.expand(batch, *latents.shape[1:])
        v = model(x_in, context, t.expand(batch), tokens, image_latents=image_latents, clean_frames=k).float()
        if cfg:
            v_uncond, v_cond = v.chunk(2)
            v = v_uncond + guidance * (v_cond - v_uncond)
        # A CPU generator: diffusers draws the SDE noise on CPU and moves it, so any device gives the same video.
        latents, old_x0 = scheduler.step(
            v, old_x0, t, timesteps[i - 1] if i > 0 else None, latents, generator=generator, return_dict=False
        )
        if callback is not None:
            callback(i + 1, len(timesteps))
    if k:
        latents[:, :k] = clean_prefix
    return latents


@torch.no_grad()
def sample_mtv(
    model: MTVTransformer,
    context: torch.Tensor,
    control: AudioControl,
    *,
    latent_height: int,
    latent_width: int,
    steps: int = DEFAULT_STEPS,
    guidance: float = DEFAULT_GUIDANCE,
    seed: int = 0,
    negative_context: torch.Tensor | None = None,
    image_latents: torch.Tensor | None = None,
    carry: Callable[[torch.Tensor], torch.Tensor] | None = None,
    callback: Callable[[int, int], None] | None = None,
) -> list[torch.Tensor]:
    """Every chunk's latents [1, 13, C, h, w], in order.

    ``carry(chunk_latents) -> [1, 2, C, h, w]``: the next chunk's clean first latents. The official
    loop decodes the chunk and re-encodes its last 5 frames; without a VAE the last 2 latents are kept.
    ``image_latents`` [1, T|1, C, h, w] condition the first chunk (I2V keyframe); the official
    sampler passes zeros, which is what None gives.
    """
    cfg = model.config
    t_lat = cfg.latent_frames
    clip = (t_lat - 1) * cfg.temporal_compression + 1
    channels = cfg.in_channels // 2 if cfg.in_channels == 2 * cfg.out_channels else cfg.out_channels
    n_frames = control.num_frames or control.vocal.shape[0]
    total_chunks = num_chunks(n_frames, clip)
    generator = torch.Generator().manual_seed(int(seed))
    carry = carry or (lambda lat: lat[:, -CARRIED_LATENTS:])
    chunks, prefix = [], None
    for c in range(total_chunks):
        windows = {k: chunk_windows(v, c, clip) for k, v in control.streams().items()}
        img = None
        if c == 0 and image_latents is not None:
            img = torch.zeros(1, t_lat, channels, latent_height, latent_width, dtype=image_latents.dtype)
            img[:, : image_latents.shape[1]] = image_latents
        step_cb = None
        if callback is not None:
            step_cb = lambda i, n, c=c: callback(c * n + i, total_chunks * n)  # noqa: E731
        lat = sample_chunk(
            model, context, windows, (t_lat, channels, latent_height, latent_width), steps=steps, guidance=guidance,
            generator=generator, negative_context=negative_context, image_latents=img, clean_prefix=prefix,
            callback=step_cb,
        )
        chunks.append(lat)
        if c + 1 < total_chunks:
            prefix = carry(lat)
    return chunks
