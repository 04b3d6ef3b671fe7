"""MMAudio's video and sequence-length glue, as its demo runs it (hkchengrex/MMAudio @ 974010a).

From decoded frames to the pixels the encoders see, bit for bit where the reference is integer:

- frame selection: ``mmaudio/data/av_utils.py`` ``read_frames`` (a float64 slot counter per rate);
- resizing: ``mmaudio/eval_utils.py`` ``load_video`` (torchvision v2 on uint8 CPU tensors);
- duration shrink and sequence lengths: ``load_video`` and ``mmaudio/model/sequence_config.py``.

Frames enter as ComfyUI IMAGE batches (``[T, H, W, 3]`` float in 0..1) or uint8 frames.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from ..common.frame_rate import exact_rate, frame_times

CLIP_FPS = 8.0  # eval_utils.py _CLIP_FPS
SYNC_FPS = 25.0  # eval_utils.py _SYNC_FPS
CLIP_SIZE = 384  # eval_utils.py _CLIP_SIZE (DFN5B ViT-H-14 at 378: the last 6 rows/columns fall outside the patches)
SYNC_SIZE = 224  # eval_utils.py _SYNC_SIZE
SYNC_SEGMENT = 16  # features_utils.py encode_video_with_sync: 16-frame segments ...
SYNC_STRIDE = 8  # ... every 8 frames, 8 tokens each
# eval_utils.py load_video: v2.ToDtype(float32, scale=True) multiplies by the float32 reciprocal.
_INV_255 = 1.0 / 255


def select_frames(count: int, fps, rates: Sequence[float], end_sec: Optional[float] = None) -> list[list[int]]:
    """Frame indices per target rate, as av_utils.read_frames picks them.

    Frames later than ``end_sec`` are skipped (one exactly at it is kept). For each rate a float64
    counter starts at 0; every frame is appended while its time is at or after the counter, which then
    advances by ``1/rate``. The counter drifts (0.04 is not exact in binary), so even at equal rates
    some frames are skipped and others repeated, exactly as in the reference.
    """
    picked: list[list[int]] = [[] for _ in rates]
    nxt = [0.0 for _ in rates]
    step = [1 / r for r in rates]
    for i, t in enumerate(frame_times(count, fps)):
        if end_sec is not None and t > end_sec:
            continue
        for k in range(len(rates)):
            while t >= nxt[k]:
                picked[k].append(i)
                nxt[k] += step[k]
    return picked


def effective_duration(requested: float, n_clip: int, n_sync: int, clip_fps: float = CLIP_FPS,
                       sync_fps: float = SYNC_FPS) -> float:
    """eval_utils.load_video: the duration shrinks to what the selected frames cover (CLIP first, then sync)."""
    duration = requested
    if n_clip / clip_fps < duration:
        duration = n_clip / clip_fps
    if n_sync / sync_fps < duration:
        duration = n_sync / sync_fps
    return duration


def latent_seq_len(duration: float, sample_rate: int, samples_per_latent: int) -> int:
    """sequence_config.py: ceil(duration * sr / hop / latent_downsample_rate), hop = samples_per_latent / 2."""
    return int(math.ceil(duration * sample_rate / (samples_per_latent // 2) / 2))


def clip_seq_len(duration: float) -> int:
    return int(duration * CLIP_FPS)  # sequence_config.py clip_seq_len


def sync_seq_len(duration: float) -> int:
    # sequence_config.py sync_seq_len: whole 16-frame/stride-8 segments, 8 tokens each (float arithmetic).
    return int(((duration * SYNC_FPS - SYNC_SEGMENT) // SYNC_STRIDE + 1) * SYNC_SEGMENT / 2)


def to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """[T, H, W, C] IMAGE (float 0..1) or uint8 -> uint8 [T, 3, H, W] on the CPU.

    A float IMAGE decoded from 8-bit video holds k/255, which rounds back to k exactly.
    """
    if frames.dim() != 4 or frames.shape[-1] not in (3, 4):
        raise ValueError(f"expected frames [T, H, W, 3], got {tuple(frames.shape)}")
    x = frames[..., :3].detach().cpu()
    if x.dtype != torch.uint8:
        x = (x.float() * 255).round_().clamp_(0, 255).to(torch.uint8)
    return x.permute(0, 3, 1, 2).contiguous()


def resize_bicubic_uint8(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """torchvision v2.Resize(BICUBIC, antialias=True) on a uint8 CPU tensor: torch's native uint8 kernel
    (separable, fixed-point, rounded per pass). A float resize moves ~20 % of pixels by 1-3 levels."""
    if x.dtype != torch.uint8:
        raise ValueError(f"expected uint8 frames, got {x.dtype}")
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x.cpu(), size=size, mode="bicubic", antialias=True, align_corners=False)


def clip_resize(x: torch.Tensor, size: int = CLIP_SIZE) -> torch.Tensor:
    """load_video clip_transform: v2.Resize((S, S)) squashes to a square (no crop)."""
    return resize_bicubic_uint8(x, (size, size))


def sync_resize(x: torch.Tensor, size: int = SYNC_SIZE) -> torch.Tensor:
    """load_video sync_transform: v2.Resize(S) on the short side (long side truncated), v2.CenterCrop(S)."""
    h, w = x.shape[-2:]
    short, long = (h, w) if h <= w else (w, h)
    long = int(size * long / short)
    nh, nw = (size, long) if h <= w else (long, size)
    x = resize_bicubic_uint8(x, (nh, nw))
    # torchvision center_crop: offsets rounded half to even (Python round).
    top, left = int(round((nh - size) / 2.0)), int(round((nw - size) / 2.0))
    return x[..., top:top + size, left:left + size]


def unit_float(x: torch.Tensor) -> torch.Tensor:
    """v2.ToDtype(float32, scale=True): x * float32(1/255), not x / 255."""
    return x.to(torch.float32).mul_(_INV_255)


def sync_pixels(x: torch.Tensor) -> torch.Tensor:
    """uint8 sync frames -> Synchformer input in [-1, 1] (v2.Normalize(0.5, 0.5))."""
    return unit_float(x).sub_(0.5).div_(0.5)


@dataclass
class VideoInputs:
    """What eval_utils.load_video returns, plus the selected indices (for tests and reports)."""

    clip_frames: Optional[torch.Tensor]  # [Tc, 3, S, S] uint8
    sync_frames: Optional[torch.Tensor]  # [Ts, 3, S, S] uint8
    clip_indices: list[int]
    sync_indices: list[int]
    duration_s: float


def load_video_frames(images: torch.Tensor, fps, duration_s: Optional[float] = None, *,
                      clip_size: Optional[int] = CLIP_SIZE, sync_size: Optional[int] = SYNC_SIZE) -> VideoInputs:
    """IMAGE batch + its frame rate -> the reference's CLIP and Synchformer frames (eval_utils.load_video).

    ``duration_s`` None (or <= 0) means the whole clip: T / fps. A size of None skips that branch.
    """
    frames = to_uint8(images)
    length = float(Fraction(frames.shape[0]) / exact_rate(fps))
    requested = length if duration_s is None or duration_s <= 0 else float(duration_s)
    clip_idx, sync_idx = select_frames(frames.shape[0], fps, (CLIP_FPS, SYNC_FPS), end_sec=requested)
    duration = effective_duration(requested, len(clip_idx), len(sync_idx))
    clip_idx = clip_idx[: int(CLIP_FPS * duration)]
    sync_idx = sync_idx[: int(SYNC_FPS * duration)]
    clip = None if clip_size is None or not clip_idx else clip_resize(frames[clip_idx], clip_size)
    sync = None if sync_size is None or not sync_idx else sync_resize(frames[sync_idx], sync_size)
    return VideoInputs(clip, sync, clip_idx, sync_idx, duration)
