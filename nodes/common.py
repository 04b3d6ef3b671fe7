"""Inputs and placements every Soundstage node module builds the same way."""
from __future__ import annotations

import torch

from ..compat import io, model_management
from ..models.common.device import Placement
from .model_folders import model_choices

SEED_MAX = 0xFFFFFFFFFFFFFFFF  # ComfyUI's seed widgets span the full uint64 range


def seed_input(tooltip: str, *, default: int = 0, control_after_generate: bool = True,
               name: str = "seed") -> io.Int.Input:
    return io.Int.Input(name, default=default, min=0, max=SEED_MAX, step=1,
                        control_after_generate=control_after_generate or None, tooltip=tooltip)


def precision_input(options, default: str, tooltip: str, name: str = "precision") -> io.Combo.Input:
    return io.Combo.Input(name, options=list(options), default=default, tooltip=tooltip)


def optional_model_choices(folder: str, none_label: str) -> list[str]:
    """A loader combo whose first entry means "no file"."""
    return [none_label] + model_choices(folder)


def compute_placement(dtype: torch.dtype, offload: torch.device | None = None) -> Placement:
    """ComfyUI's compute device (the runner's headless) for a module of ``dtype``."""
    return Placement(model_management.get_torch_device(), dtype,
                     offload if offload is not None else model_management.unet_offload_device())
