"""Inputs and placements every Soundstage node module builds the same way."""
from __future__ import annotations

import os

import torch

from ..compat import folder_paths, io, model_management
from ..models.common.device import Placement
from .model_folders import model_choices, register_model_folders

SEED_MAX = 0xFFFFFFFFFFFFFFFF  # ComfyUI's seed widgets span the full uint64 range


def seed_input(tooltip: str, *, default: int = 0, control_after_generate: bool = True,
               name: str = "seed") -> io.Int.Input:
    return io.Int.Input(name, default=default, min=0, max=SEED_MAX, step=1,
                        control_after_generate=control_after_generate or None, tooltip=tooltip)


def audio_latent(samples: torch.Tensor, **fields) -> dict:
    """Core LATENT of audio: ``samples`` [B, C, T] (channels before frames, as the mel VAEs take them)."""
    return {"samples": samples.contiguous(), "type": "audio", **fields}


def precision_input(options, default: str, tooltip: str, name: str = "precision") -> io.Combo.Input:
    return io.Combo.Input(name, options=list(options), default=default, tooltip=tooltip)


def optional_model_choices(folder: str, none_label: str) -> list[str]:
    """A loader combo whose first entry means "no file"."""
    return [none_label] + model_choices(folder)


def model_folder_roots(folder: str) -> list[str]:
    """The existing directories of a registered model folder, in ComfyUI's search order."""
    register_model_folders()
    return [root for root in folder_paths.get_folder_paths(folder) if os.path.isdir(root)]


def find_in_model_folders(folder: str, relative: str) -> str | None:
    """The first ``<root>/<relative>`` file over the folder's roots (for multi-file layouts the
    file-list API does not cover: HF folders, tokenizers), or None."""
    for root in model_folder_roots(folder):
        path = os.path.join(root, relative)
        if os.path.isfile(path):
            return path
    return None


def compute_placement(dtype: torch.dtype, offload: torch.device | None = None) -> Placement:
    """ComfyUI's compute device (the runner's headless) for a module of ``dtype``."""
    return Placement(model_management.get_torch_device(), dtype,
                     offload if offload is not None else model_management.unet_offload_device())
