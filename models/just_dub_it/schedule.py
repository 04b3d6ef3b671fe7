"""LTX-2 sigma schedules as JUST-DUB-IT calls them, and the paper's frame / resolution rules."""
from __future__ import annotations

import math

import torch

# ltx_core LTX2Scheduler: the shift is interpolated between these token counts.
BASE_SHIFT_ANCHOR = 1024
MAX_SHIFT_ANCHOR = 4096
# ltx_pipelines.constants: the stage-2 (2x upsampled, distilled LoRA) refinement schedule.
STAGE2_DISTILLED_SIGMAS = (0.909375, 0.725, 0.421875, 0.0)
# JUST-DUB-IT defaults (ltx_pipelines.constants / paper 4): 40 steps, CFG 3.0, 512x768, 121 frames.
DEFAULT_STEPS = 40
DEFAULT_CFG = 3.0
VIDEO_FPS_CHOICES = (24.0, 25.0)


def ltx2_sigmas(
    steps: int,
    tokens: int | None = None,
    *,
    max_shift: float = 2.05,
    base_shift: float = 0.95,
    stretch: bool = True,
    terminal: float = 0.1,
) -> torch.Tensor:
    """``steps + 1`` float32 sigmas from 1 to 0.

    JUST-DUB-IT calls the scheduler without a latent, so ``tokens`` defaults to 4096 (shift 2.05).
    The shifted sigmas are stretched so the last non-zero one equals ``terminal``.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    tokens = MAX_SHIFT_ANCHOR if tokens is None else tokens
    sigmas = torch.linspace(1.0, 0.0, steps + 1)
    slope = (max_shift - base_shift) / (MAX_SHIFT_ANCHOR - BASE_SHIFT_ANCHOR)
    shift = tokens * slope + base_shift - slope * BASE_SHIFT_ANCHOR
    e = math.exp(shift)
    sigmas = torch.where(sigmas != 0, e / (e + (1 / sigmas - 1)), 0)
    if stretch:
        nz = sigmas != 0
        one_minus = 1.0 - sigmas[nz]
        sigmas[nz] = 1.0 - one_minus / (one_minus[-1] / (1.0 - terminal))
    return sigmas.to(torch.float32)


def stage2_sigmas() -> torch.Tensor:
    return torch.tensor(STAGE2_DISTILLED_SIGMAS, dtype=torch.float32)


def valid_frame_count(frames: int) -> int:
    """The largest ``8k + 1`` not above ``frames`` (the causal video VAE's frame rule)."""
    if frames < 1:
        raise ValueError(f"need at least one frame, got {frames}")
    return (frames - 1) // 8 * 8 + 1


def latent_frames(frames: int) -> int:
    if (frames - 1) % 8:
        raise ValueError(f"LTX-2 needs 8k+1 frames, got {frames}")
    return (frames - 1) // 8 + 1


def check_resolution(height: int, width: int, multiple: int = 32) -> None:
    """Stage 1 works on 32-pixel latents; a 2x stage 2 needs the stage-1 size to be a multiple of 64."""
    if height % multiple or width % multiple:
        raise ValueError(f"resolution {width}x{height} must be a multiple of {multiple}")


def audio_latent_frames(duration_s: float) -> int:
    """Audio latent frames for ``duration_s`` at 16 kHz / hop 160 / 4x (as diffusers' LTX-2 pipeline counts)."""
    return max(1, round(duration_s * 16000 / 160 / 4))
