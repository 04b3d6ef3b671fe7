"""Lightricks' DubIt in-context layout on LTX-2.3 (ltx_pipelines/dubit.py, LTX-2 1.2.0).

Target tokens first, clean reference tokens appended. The reference video sits at the target's
own positions; the reference audio (the full, untrimmed source audio) is shifted to negative time,
ending 0.04 s before zero. No attention masks; per-token timesteps are ``denoise_mask * sigma``.
Unlike JUST-DUB-IT's layout (:mod:`.in_context`) the audio target need not match the reference length.
"""
from __future__ import annotations

import torch

from .in_context import (
    AUDIO_HOP_LENGTH,
    AUDIO_LATENT_DOWNSAMPLE,
    AUDIO_SAMPLE_RATE,
    TokenState,
    audio_positions,
    patchify_audio,
    patchify_video,
    video_positions,
)

# dubit.py patchify_dubit_audio_reference_latent: the reference ends this long before time 0.
AUDIO_REFERENCE_GAP_S = 0.04
AUDIO_LATENTS_PER_SECOND = AUDIO_SAMPLE_RATE / AUDIO_HOP_LENGTH / AUDIO_LATENT_DOWNSAMPLE  # 25


def audio_target_frames(pixel_frames: int, fps: float) -> int:
    """Audio latent frames of a target clip (dubit.py: round(frames / fps * 25))."""
    return round(pixel_frames / fps * AUDIO_LATENTS_PER_SECOND)


def negative_time_audio_positions(frames: int, *, batch: int = 1, device=None) -> torch.Tensor:
    """[B, 1, T, 2] positions of a reference audio latent moved to [-(end + 0.04), -0.04) s."""
    pos = audio_positions(frames, batch=batch, device=device)
    end = pos[:, :, -1:, 1:2]  # end time of the last reference token
    return pos - end - AUDIO_REFERENCE_GAP_S


def _state(target_clean, target_mask, ref_tokens, ref_mask_value, target_pos, ref_pos) -> TokenState:
    clean = torch.cat([target_clean, ref_tokens], dim=1)
    return TokenState(
        latent=clean.clone(),
        clean=clean,
        denoise_mask=torch.cat([target_mask, torch.full_like(ref_tokens[..., :1], ref_mask_value)], dim=1),
        positions=torch.cat([target_pos, ref_pos], dim=2),
        num_target=target_clean.shape[1],
    )


def dubit_video_state(
    reference: torch.Tensor,
    fps: float,
    *,
    target: torch.Tensor | None = None,
    reference_strength: float = 1.0,
) -> TokenState:
    """Target video tokens shaped like ``reference`` [B, C, F, H, W] (zeros, or ``target``: stage 2's
    upscaled latent), then the reference at identical positions with denoise mask ``1 - strength``."""
    b, c, f, h, w = reference.shape
    ref_tokens = patchify_video(reference)
    target_clean = torch.zeros_like(ref_tokens) if target is None else patchify_video(target).to(ref_tokens)
    if target_clean.shape != ref_tokens.shape:
        raise ValueError(f"DubIt target latent {tuple(target.shape)} must match the reference {tuple(reference.shape)}")
    pos = video_positions(f, h, w, fps, batch=b, device=reference.device)
    mask = torch.ones_like(ref_tokens[..., :1])
    return _state(target_clean, mask, ref_tokens, 1.0 - reference_strength, pos, pos)


def dubit_audio_state(
    reference: torch.Tensor,
    target_frames: int,
    *,
    target: torch.Tensor | None = None,
    frozen: bool = False,
) -> TokenState:
    """``target_frames`` audio target tokens (zeros, or ``target`` [B, C, T, M]), then the whole
    ``reference`` [B, C, T_ref, M] at negative time. ``frozen`` (stage 2, own voice): denoise mask 0
    everywhere, so the target stays at ``target``."""
    b = reference.shape[0]
    ref_tokens = patchify_audio(reference)
    if target is None:
        if frozen:
            raise ValueError("a frozen DubIt audio stream needs its target latent")
        target_clean = ref_tokens.new_zeros(b, target_frames, ref_tokens.shape[-1])
    else:
        target_clean = patchify_audio(target).to(ref_tokens)
        if target_clean.shape[1] != target_frames:
            raise ValueError(f"DubIt audio target has {target_clean.shape[1]} frames, expected {target_frames}")
    mask = torch.full_like(target_clean[..., :1], 0.0 if frozen else 1.0)
    pos = audio_positions(target_frames, batch=b, device=reference.device)
    ref_pos = negative_time_audio_positions(reference.shape[2], batch=b, device=reference.device)
    return _state(target_clean, mask, ref_tokens, 0.0, pos, ref_pos)
