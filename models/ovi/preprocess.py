"""Ovi's glue around the fusion model, as character-ai/Ovi runs it (1.0 = 57a090d5, 1.1 = 5b69b25a).

- per-checkpoint specs: latent lengths, target area, prompt format (``ovi/ovi_fusion_engine.py`` L26-47);
- t2v: the requested size scaled to the target area, then each side snapped to 32
  (``ovi/utils/processing_utils.py`` ``snap_hw_to_multiple_of_32``, L141-167);
- i2v: the start image resized, without cropping, to the 32-multiple size whose area is closest to the
  target area (``preprocess_image_tensor`` L15-90): float bicubic, no antialias, pixels in [-1, 1].
  The video latent grid then follows the image latent (ovi_fusion_engine.py L255-258).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .text import AUDCAP_CLOSE, AUDCAP_OPEN, uses_audcap_tags

VIDEO_FPS = 24  # Ovi generates 24 fps video (5 s = 121 frames = 31 latents)
TEMPORAL_STRIDE = 4  # Wan 2.2 VAE: 4 frames per latent after the first
SIZE_MULTIPLE = 32  # processing_utils.py: h_w_multiple_of=32 (VAE 16x times the 2x2 patch)


@dataclass(frozen=True)
class OviSpec:
    video_latent_length: int
    audio_latent_length: int
    video_area: int

    @property
    def frames(self) -> int:
        return (self.video_latent_length - 1) * TEMPORAL_STRIDE + 1

    @property
    def seconds(self) -> float:
        return (self.frames - 1) / VIDEO_FPS


# ovi_fusion_engine.py NAME_TO_MODEL_SPECS_MAP (L26-47): 5 s = 31 / 157 latents, 10 s = 61 / 314.
SPECS = {
    "720x720_5s": OviSpec(31, 157, 720 * 720),
    "960x960_5s": OviSpec(31, 157, 960 * 960),
    "960x960_10s": OviSpec(61, 314, 960 * 960),
}


def spec(variant: str) -> OviSpec:
    if variant not in SPECS:
        raise ValueError(f"unknown Ovi model variant {variant!r}; expected one of {tuple(SPECS)}")
    return SPECS[variant]


# The three checkpoints share one key layout (golden/manifests/ovi_1_1_fusion_note.json), so the weights
# cannot tell them apart: the released file names can (chetwinlow1/Ovi: model.safetensors,
# model_960x960.safetensors, model_960x960_10s.safetensors; fp8 exists only for the 720 model).
def variant_from_filename(name: str) -> str:
    """``960x960_10s`` / ``960x960_5s`` / ``720x720_5s`` from a checkpoint's file name (720 when it says neither)."""
    stem = re.sub(r"[^0-9a-z]+", "_", str(name).replace("\\", "/").rsplit("/", 1)[-1].lower())
    if "960x960" in stem or "960" in stem.split("_"):
        return "960x960_10s" if re.search(r"(^|_)10s($|_)", stem) else "960x960_5s"
    return "720x720_5s"


def latent_lengths(variant: str, latent_frames: int = 0, audio_length: int = 0) -> tuple[int, int]:
    """(video, audio) latent lengths; 0 takes the checkpoint's trained length (5 s: 31 / 157, 10 s: 61 / 314)."""
    s = spec(variant)
    return latent_frames or s.video_latent_length, audio_length or s.audio_latent_length


def format_prompt(text: str, variant: str) -> str:
    """The engine rewrites the audio caption to the checkpoint's tags (ovi_fusion_engine.py L199-203)."""
    if uses_audcap_tags(variant):
        return re.sub(r"Audio:\s*(.*)", rf"{AUDCAP_OPEN}\1{AUDCAP_CLOSE}", text, flags=re.S)
    return re.sub(rf"{AUDCAP_OPEN}(.*?){AUDCAP_CLOSE}", r"Audio: \1", text, flags=re.S)


def snap_to_area(height: int, width: int, area: int) -> tuple[int, int]:
    """t2v size (processing_utils.py L141-167): scale to ``area`` keeping the aspect, round each side,
    then round each to the nearest multiple of 32 (at least 32)."""
    if height <= 0 or width <= 0:
        raise ValueError(f"height and width must be positive, got {(height, width)}")
    if area and area > 0:
        scale = math.sqrt(area / float(height * width))
        height, width = int(round(height * scale)), int(round(width * scale))

    def snap(x: int) -> int:
        return max(SIZE_MULTIPLE, int(round(x / SIZE_MULTIPLE)) * SIZE_MULTIPLE)

    return snap(height), snap(width)


def image_size_for_area(height: int, width: int, area: int, multiple: int = SIZE_MULTIPLE) -> tuple[int, int]:
    """i2v size (processing_utils.py L32-55 ``_best_hw_for_area``): among a few 32-multiple grids around the
    aspect ratio, plus the plainly scaled size, the one whose area is closest to ``area`` (ties: the
    closer aspect ratio, then the first candidate)."""
    if area <= 0:
        return height, width
    aspect = width / float(height)
    units = max(1, area // (multiple * multiple))
    rows0 = max(1, int(round(math.sqrt(units / max(aspect, 1e-8)))))
    candidates = []
    for d in range(-3, 4):
        rows = max(1, rows0 + d)
        cols = max(1, int(round(rows * aspect)))
        candidates.append((rows * multiple, cols * multiple))
    scale = math.sqrt(area / (height * float(width)))
    candidates.append((max(multiple, int(round(height * scale / multiple)) * multiple),
                       max(multiple, int(round(width * scale / multiple)) * multiple)))
    return min(candidates, key=lambda hw: (abs(hw[0] * hw[1] - area), abs(hw[1] / max(hw[0], 1e-8) - aspect)))


def first_frame_pixels(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """IMAGE [H, W, 3] (0..1) -> [1, 3, height, width] in [-1, 1] as preprocess_image_tensor makes it
    (L64-89): uint8 / 255, x * 2 - 1, float bicubic without antialias and without clamping."""
    u8 = (image[..., :3].float().cpu() * 255).round().clamp(0, 255)
    x = (u8 / 255.0).permute(2, 0, 1).unsqueeze(0) * 2.0 - 1.0
    if tuple(x.shape[-2:]) != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bicubic", align_corners=False)
    return x
