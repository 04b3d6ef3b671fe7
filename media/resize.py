"""Resize plans that keep the aspect ratio and snap sizes to a multiple (VAEs need multiples of 8/16/32)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .errors import MediaError

RESIZE_MODES = ("none", "fit", "crop", "stretch")


@dataclass(frozen=True)
class ResizePlan:
    """Scale to (scaled_w, scaled_h), then crop (out_w, out_h) at (crop_x, crop_y)."""

    scaled_w: int
    scaled_h: int
    crop_x: int
    crop_y: int
    out_w: int
    out_h: int

    def crop(self, frame: np.ndarray) -> np.ndarray:
        return frame[self.crop_y:self.crop_y + self.out_h, self.crop_x:self.crop_x + self.out_w]


def plan_resize(src_w: int, src_h: int, mode: str = "none", width: int = 0, height: int = 0,
                multiple_of: int = 1) -> ResizePlan:
    """Plan a resize. width/height 0 leave that side free ("fit" to width only, say).

    none: source size; fit: largest size inside width x height; crop: cover width x height and
    centre-crop; stretch: exactly width x height. Then both sides are cut down to ``multiple_of``
    by a centre crop, never by distortion.
    """
    if mode not in RESIZE_MODES:
        raise MediaError(f"resize mode must be one of {RESIZE_MODES}, got {mode!r}")
    if src_w <= 0 or src_h <= 0:
        raise MediaError(f"source has no picture size ({src_w}x{src_h})")
    if width < 0 or height < 0 or multiple_of < 1:
        raise MediaError(f"width/height must be >= 0 and multiple_of >= 1 (got {width}, {height}, {multiple_of})")
    if mode == "none" or (width == 0 and height == 0):
        sw, sh, cw, ch = src_w, src_h, src_w, src_h
    elif mode == "stretch":
        sw, sh = width or src_w, height or src_h
        cw, ch = sw, sh
    else:
        scales = [s for s in ((width / src_w) if width else None, (height / src_h) if height else None) if s]
        scale = min(scales) if mode == "fit" else max(scales)
        sw, sh = max(1, round(src_w * scale)), max(1, round(src_h * scale))
        cw = min(sw, width) if (mode == "crop" and width) else sw
        ch = min(sh, height) if (mode == "crop" and height) else sh
    out_w, out_h = (cw // multiple_of) * multiple_of, (ch // multiple_of) * multiple_of
    if out_w == 0 or out_h == 0:
        raise MediaError(f"size {cw}x{ch} is smaller than multiple_of={multiple_of}")
    return ResizePlan(sw, sh, (sw - out_w) // 2, (sh - out_h) // 2, out_w, out_h)


def resize_images(images: torch.Tensor, plan: ResizePlan) -> torch.Tensor:
    """Apply a plan to an IMAGE batch [N, H, W, C] (antialiased bilinear, like swscale's area-ish downscale)."""
    n, h, w, c = images.shape
    if (w, h) != (plan.scaled_w, plan.scaled_h):
        x = images.permute(0, 3, 1, 2)
        x = F.interpolate(x, size=(plan.scaled_h, plan.scaled_w), mode="bilinear", antialias=True, align_corners=False)
        images = x.permute(0, 2, 3, 1).clamp_(0.0, 1.0)
    return images[:, plan.crop_y:plan.crop_y + plan.out_h, plan.crop_x:plan.crop_x + plan.out_w].contiguous()
