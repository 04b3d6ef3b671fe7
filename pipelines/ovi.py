"""Ovi: one prompt (and optionally a first frame) -> video latent + audio latent in one pass
(twin DiTs with blockwise fusion). Plain tensors in and out; the Wan2.2 VAE and the MMAudio
16 kHz mel VAE + BigVGAN decode them (``models/ovi/video_vae.py``, ``models/common/codecs``)."""
from __future__ import annotations

from typing import Callable, Optional

import torch

import math

from ..models.ovi.long_clip import sample_ovi_long
from ..models.ovi.preprocess import VIDEO_FPS, snap_to_area
from ..models.ovi.sampler import OviConditioning, OviSampling, sample_ovi

VAE_TEMPORAL = 4  # Wan2.2 VAE: 4 frames per latent frame after the first
VAE_SPATIAL = 16  # Wan2.2 VAE: 16x spatial, 4x temporal
PIXEL_MULTIPLE = 32  # VAE 16x times the (2, 2) patch; Ovi snaps sizes to multiples of 32


def check_pixel_size(width: int, height: int, node: str = "Ovi Sampler") -> None:
    for name, v in (("width", width), ("height", height)):
        if v % PIXEL_MULTIPLE:
            raise ValueError(f"{node}: input '{name}': must be a multiple of {PIXEL_MULTIPLE}, got {v}")


def sampling_inputs(num_blocks: int, conditioning: dict, width: int, height: int, slg_layer: int,
                    image_latent: Optional[torch.Tensor] = None, node: str = "Ovi Sampler", area: int = 0):
    """Checked conditioning and latent size: (OviConditioning, latent height, latent width).

    ``conditioning``: {"positive", "video_negative", "audio_negative"} text features; ``image_latent``
    the Wan VAE latent of a first frame [1, C, 1, H, W] (its size then wins over width/height).
    ``area`` > 0: width x height only give the aspect; the size is scaled to that pixel area and snapped to
    32 as Ovi's t2v does (processing_utils.py ``snap_hw_to_multiple_of_32``; 960x960 for the 1.1 models).
    """
    if area > 0:
        height, width = snap_to_area(height, width, area)
    check_pixel_size(width, height, node)
    if slg_layer >= num_blocks:
        raise ValueError(f"{node}: input 'slg_layer': the model has {num_blocks} blocks (0 disables SLG)")
    img = None
    if image_latent is not None:
        img = image_latent
        if img.dim() != 5 or img.shape[0] != 1:
            raise ValueError(f"{node}: input 'image_latent': expected [1, C, 1, H, W], got {tuple(img.shape)}")
        img = img[0, :, :1]
        height, width = img.shape[-2] * VAE_SPATIAL, img.shape[-1] * VAE_SPATIAL
    cond = OviConditioning(conditioning["positive"], conditioning["video_negative"],
                           conditioning["audio_negative"], img)
    return cond, height // VAE_SPATIAL, width // VAE_SPATIAL


def generate(model, conditioning: dict, *, width: int, height: int, latent_frames: int, audio_length: int,
             sampling: OviSampling, image_latent: Optional[torch.Tensor] = None, device=None,
             callback: Optional[Callable] = None, node: str = "Ovi Sampler", area: int = 0):
    """One clip: (video latent [C, F, h, w], audio latent [T, C])."""
    cond, lh, lw = sampling_inputs(model.num_blocks, conditioning, width, height, sampling.slg_layer, image_latent, node,
                                   area)
    device = device if device is not None else next(model.parameters()).device
    return sample_ovi(model, cond, latent_frames=latent_frames, latent_height=lh, latent_width=lw,
                      audio_length=audio_length, sampling=sampling, device=device, callback=callback)


def generate_long(model, conditioning: dict, *, chunks: int, width: int, height: int, latent_frames: int,
                  audio_length: int, sampling: OviSampling, image_latent: Optional[torch.Tensor] = None, device=None,
                  callback: Optional[Callable] = None, node: str = "Ovi Long Clip Sampler", carry: int = 1,
                  area: int = 0, reencode: Optional[Callable] = None):
    """``chunks`` clips continued from each other's last ``carry`` latent frames (``models/ovi/long_clip.py``;
    ``reencode``: video_vae.last_frame_reencoder, to start each chunk from the previous one's last frame)."""
    if not 1 <= carry < latent_frames:
        raise ValueError(f"{node}: input 'carry_frames': must be from 1 to latent_frames - 1 ({latent_frames - 1})")
    cond, lh, lw = sampling_inputs(model.num_blocks, conditioning, width, height, sampling.slg_layer, image_latent, node,
                                   area)
    device = device if device is not None else next(model.parameters()).device
    return sample_ovi_long(model, cond, chunks=chunks, latent_frames=latent_frames, latent_height=lh,
                           latent_width=lw, audio_length=audio_length, sampling=sampling, device=device,
                           callback=callback, carry=carry, reencode=reencode)


def chunks_for_seconds(seconds: float, latent_frames: int, carry: int = 1,
                       node: str = "Ovi Long Clip Sampler") -> tuple[int, int]:
    """(chunks, frames) for a clip of ``seconds`` at Ovi's 24 fps: frames = round(seconds * 24) (a clip of N
    frames lasts N / 24 s in a container); each chunk after the first adds 4 * (latent_frames - carry) frames."""
    if not 1 <= carry < latent_frames:
        raise ValueError(f"{node}: input 'carry_frames': must be from 1 to latent_frames - 1 ({latent_frames - 1})")
    frames = max(1, round(seconds * VIDEO_FPS))
    first = VAE_TEMPORAL * (latent_frames - 1) + 1
    step = VAE_TEMPORAL * (latent_frames - carry)
    return 1 + max(0, math.ceil((frames - first) / step)), frames
