"""JUST-DUB-IT's in-context token layout (paper 3.3).

The source clip's video and audio latents are appended as clean context tokens after the noisy
target tokens, at positions identical to the target's. Per-token timesteps are
``denoise_mask * sigma`` (0 for context and for a clean first frame), and the audio<->video
cross-attention is restricted to target-target pairs.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

# LTX-2 video VAE compression (time, height, width) and its causal first frame.
VIDEO_SCALE_FACTORS = (8, 32, 32)
# LTX-2 audio latents: 16 kHz mel with hop 160, 4x temporal downsampling (ltx_core AudioPatchifier).
AUDIO_SAMPLE_RATE = 16000
AUDIO_HOP_LENGTH = 160
AUDIO_LATENT_DOWNSAMPLE = 4


@dataclass
class TokenState:
    """One modality's token sequence: target tokens first, then appended context tokens."""

    latent: torch.Tensor  # [B, N, C]
    clean: torch.Tensor  # [B, N, C] the conditioning values (0 where nothing is known)
    denoise_mask: torch.Tensor  # [B, N, 1] 1 = generated, 0 = clean conditioning
    positions: torch.Tensor  # [B, P, N, 2] [start, end) per axis
    num_target: int

    def timesteps(self, sigma: float | torch.Tensor) -> torch.Tensor:
        return self.denoise_mask * sigma

    def target(self, tokens: torch.Tensor | None = None) -> torch.Tensor:
        return (self.latent if tokens is None else tokens)[:, : self.num_target]


# ---- patchify ---------------------------------------------------------------------------------

def patchify_video(latent: torch.Tensor) -> torch.Tensor:
    """[B, C, F, H, W] -> [B, F*H*W, C] (patch size 1)."""
    return latent.flatten(2).transpose(1, 2)


def unpatchify_video(tokens: torch.Tensor, frames: int, height: int, width: int) -> torch.Tensor:
    return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, frames, height, width)


def patchify_audio(latent: torch.Tensor) -> torch.Tensor:
    """[B, C, T, M] -> [B, T, C*M] (channels-major per frame, as ltx_core's AudioPatchifier)."""
    return latent.permute(0, 2, 1, 3).flatten(2)


def unpatchify_audio(tokens: torch.Tensor, channels: int) -> torch.Tensor:
    b, t, _ = tokens.shape
    return tokens.reshape(b, t, channels, -1).permute(0, 2, 1, 3)


# ---- positions --------------------------------------------------------------------------------

def video_positions(frames: int, height: int, width: int, fps: float, *, batch: int = 1, device=None) -> torch.Tensor:
    """[B, 3, F*H*W, 2] pixel-space [start, end) bounds; time in seconds with the causal first frame."""
    st, sh, sw = VIDEO_SCALE_FACTORS
    f, h, w = torch.meshgrid(
        torch.arange(frames, dtype=torch.float32, device=device),
        torch.arange(height, dtype=torch.float32, device=device),
        torch.arange(width, dtype=torch.float32, device=device),
        indexing="ij",
    )
    start = torch.stack([f, h, w]).flatten(1)  # [3, N]
    bounds = torch.stack([start, start + 1], dim=-1)  # [3, N, 2]
    bounds = bounds * torch.tensor([st, sh, sw], dtype=torch.float32, device=device).view(3, 1, 1)
    # The first latent frame encodes one pixel frame, the rest eight: shift by (1 - 8) and clamp.
    bounds[0] = (bounds[0] + 1 - st).clamp(min=0) / fps
    return bounds.unsqueeze(0).expand(batch, -1, -1, -1).contiguous()


def audio_positions(frames: int, *, batch: int = 1, device=None) -> torch.Tensor:
    """[B, 1, T, 2] [start, end) in seconds of each latent frame (causal, like the video time axis)."""
    i = torch.arange(frames, dtype=torch.float32, device=device)
    d = AUDIO_LATENT_DOWNSAMPLE

    def mel_to_seconds(mel: torch.Tensor) -> torch.Tensor:
        return (mel + 1 - d).clamp(min=0) * AUDIO_HOP_LENGTH / AUDIO_SAMPLE_RATE

    bounds = torch.stack([mel_to_seconds(i * d), mel_to_seconds((i + 1) * d)], dim=-1)
    return bounds.view(1, 1, frames, 2).expand(batch, -1, -1, -1).contiguous()


# ---- layout -----------------------------------------------------------------------------------

def video_state(
    reference: torch.Tensor,
    fps: float,
    *,
    first_frame: torch.Tensor | None = None,
    first_frame_strength: float = 1.0,
    reference_strength: float = 1.0,
) -> TokenState:
    """Target video tokens shaped like ``reference`` [B, C, F, H, W], then the reference tokens.

    ``first_frame`` [B, C, 1, H, W] replaces target frame 0 (ltx_core VideoConditionByLatentIndex).
    """
    b, c, f, h, w = reference.shape
    n = f * h * w
    target_clean = torch.zeros(b, n, c, dtype=reference.dtype, device=reference.device)
    target_mask = torch.ones(b, n, 1, dtype=reference.dtype, device=reference.device)
    if first_frame is not None:
        tokens = patchify_video(first_frame)
        target_clean[:, : tokens.shape[1]] = tokens
        target_mask[:, : tokens.shape[1]] = 1.0 - first_frame_strength
    ref_tokens = patchify_video(reference)
    pos = video_positions(f, h, w, fps, batch=b, device=reference.device)
    clean = torch.cat([target_clean, ref_tokens], dim=1)
    return TokenState(
        latent=clean.clone(),
        clean=clean,
        denoise_mask=torch.cat([target_mask, torch.full_like(target_mask, 1.0 - reference_strength)], dim=1),
        positions=torch.cat([pos, pos], dim=2),  # identical positions for the context (paper 3.3)
        num_target=n,
    )


def audio_state(reference: torch.Tensor, *, reference_strength: float = 1.0) -> TokenState:
    """Target audio tokens shaped like ``reference`` [B, C, T, M], then the reference tokens."""
    b, c, t, m = reference.shape
    ref_tokens = patchify_audio(reference)
    target_clean = torch.zeros_like(ref_tokens)
    target_mask = torch.ones(b, t, 1, dtype=reference.dtype, device=reference.device)
    pos = audio_positions(t, batch=b, device=reference.device)
    clean = torch.cat([target_clean, ref_tokens], dim=1)
    return TokenState(
        latent=clean.clone(),
        clean=clean,
        denoise_mask=torch.cat([target_mask, torch.full_like(target_mask, 1.0 - reference_strength)], dim=1),
        positions=torch.cat([pos, pos], dim=2),
        num_target=t,
    )


def add_noise(state: TokenState, noise: torch.Tensor, noise_scale: float = 1.0) -> TokenState:
    """ltx_core GaussianNoiser: noise only where the denoise mask is set."""
    m = state.denoise_mask * noise_scale
    return replace(state, latent=(noise * m + state.latent * (1 - m)).to(state.latent.dtype))


def isolation_masks(
    video: TokenState, audio: TokenState, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """(a2v [Nv, Na], v2a [Na, Nv]) additive masks: 0 only for target-target pairs, -inf elsewhere.

    JUST-DUB-IT keeps the source clip's audio and video from leaking into each other's stream
    (pipeline_justdubit._prepare_cross_attention_mask); rows with no allowed key give 0.
    """
    vm = video.denoise_mask[0, :, 0]
    am = audio.denoise_mask[0, :, 0]
    allowed = (am[:, None] * vm[None, :]) == 1
    v2a = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, float("-inf"))
    return v2a.T.contiguous(), v2a


def blend_clean(denoised: torch.Tensor, state: TokenState) -> torch.Tensor:
    """Keep conditioning tokens at their clean values (ltx_core post_process_latent)."""
    m = state.denoise_mask
    return (denoised.float() * m + state.clean.float() * (1 - m)).to(denoised.dtype)
