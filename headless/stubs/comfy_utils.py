"""Headless stand-in for ``comfy.utils``: ProgressBar (with ComfyUI's global hook) and common_upscale."""
from __future__ import annotations

import sys

import torch
import torch.nn.functional as F

PROGRESS_BAR_ENABLED = True
PROGRESS_BAR_HOOK = None


def set_progress_bar_enabled(enabled: bool) -> None:
    global PROGRESS_BAR_ENABLED
    PROGRESS_BAR_ENABLED = enabled


def set_progress_bar_global_hook(function) -> None:
    """The runner installs ``function(value, total, preview, node_id=None)`` here, as ComfyUI's server does."""
    global PROGRESS_BAR_HOOK
    PROGRESS_BAR_HOOK = function


class ProgressBar:
    def __init__(self, total, node_id=None):
        self.total = total
        self.current = 0
        self.hook = PROGRESS_BAR_HOOK
        self.node_id = node_id

    def update_absolute(self, value, total=None, preview=None):
        if total is not None:
            self.total = total
        if value > self.total:
            value = self.total
        self.current = value
        if self.hook is not None:
            self.hook(self.current, self.total, preview, node_id=self.node_id)
        elif PROGRESS_BAR_ENABLED:
            print_progress_bar(self.current, self.total)

    def update(self, value):
        self.update_absolute(self.current + value)


def print_progress_bar(current, total, width: int = 30) -> None:
    """A one-line terminal bar on stderr, redrawn in place."""
    frac = current / total if total else 1.0
    filled = int(round(width * frac))
    end = "\n" if current >= total else ""
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {current}/{total}{end}")
    sys.stderr.flush()


def common_upscale(samples: torch.Tensor, width: int, height: int, upscale_method: str, crop: str) -> torch.Tensor:
    """Resize ``[B,C,H,W]`` (ComfyUI's helper): optional centre crop to the target aspect, then interpolate."""
    if crop == "center":
        old_width, old_height = samples.shape[-1], samples.shape[-2]
        old_aspect = old_width / old_height
        new_aspect = width / height
        x = y = 0
        if old_aspect > new_aspect:
            x = round((old_width - old_width * (new_aspect / old_aspect)) / 2)
        elif old_aspect < new_aspect:
            y = round((old_height - old_height * (old_aspect / new_aspect)) / 2)
        samples = samples.narrow(-2, y, old_height - y * 2).narrow(-1, x, old_width - x * 2)
    if upscale_method == "bislerp" or upscale_method == "lanczos":
        upscale_method = "bicubic"
    if upscale_method in ("bilinear", "bicubic"):
        return F.interpolate(samples, size=(height, width), mode=upscale_method, align_corners=False)
    return F.interpolate(samples, size=(height, width), mode=upscale_method)
