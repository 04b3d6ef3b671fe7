"""Inputs and placements every Soundstage node module builds the same way."""
from __future__ import annotations

import os

import torch

from ..compat import folder_paths, io, model_management
from ..models.common.device import (FP8_WEIGHT_DTYPES, OFFLOAD_MODES, WEIGHT_DTYPES, Placement, canonical_name,
                                     resolve_dtype)
from .model_folders import model_choices, register_model_folders

SEED_MAX = 0xFFFFFFFFFFFFFFFF  # ComfyUI's seed widgets span the full uint64 range


def search_aliases(*words: str) -> dict:
    """``io.Schema`` keyword for the words the node search also finds a node by (where this ComfyUI's
    Schema has the field; an older one gets nothing instead of a load error)."""
    fields = getattr(io.Schema, "__dataclass_fields__", {})
    return {"search_aliases": list(words)} if "search_aliases" in fields else {}


def seed_input(tooltip: str, *, default: int = 0, control_after_generate: bool = True,
               name: str = "seed") -> io.Int.Input:
    return io.Int.Input(name, default=default, min=0, max=SEED_MAX, step=1,
                        control_after_generate=control_after_generate or None, tooltip=tooltip)


def audio_latent(samples: torch.Tensor, **fields) -> dict:
    """Core LATENT of audio: ``samples`` [B, C, T] (channels before frames, as the mel VAEs take them)."""
    return {"samples": samples.contiguous(), "type": "audio", **fields}


def weight_dtype_input(tooltip: str, *, name: str = "precision", fp8: bool = False, default: str = "default",
                       optional: bool = False) -> io.Combo.Input:
    """The pack's one weight-dtype combo: ComfyUI's names (`default` = the compute device's best dtype)."""
    options = [*WEIGHT_DTYPES, *(FP8_WEIGHT_DTYPES if fp8 else ())]
    return io.Combo.Input(name, options=options, default=default, tooltip=tooltip, optional=optional)


def offload_input(tooltip: str, *, optional: bool = False) -> io.Combo.Input:
    return io.Combo.Input("offload", options=list(OFFLOAD_MODES), default="none", tooltip=tooltip,
                          optional=optional)


def check_names(**values) -> bool | str:
    """``validate_inputs`` of a loader: today's weight-dtype/offload names or the older ones saved workflows
    carry (mapped by :func:`canonical_name`); ComfyUI then skips its own combo check for these inputs."""
    known = {*WEIGHT_DTYPES, *FP8_WEIGHT_DTYPES, *OFFLOAD_MODES}
    for name, value in values.items():
        if value is not None and canonical_name(value) not in known:
            return f"input '{name}': unknown value {value!r}"
    return True


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


def compute_device() -> torch.device:
    """The device ComfyUI chose for models (headless: the runner's choice, else the best one present)."""
    return model_management.get_torch_device()


def compute_placement(dtype: torch.dtype, offload: torch.device | None = None) -> Placement:
    """ComfyUI's compute device for a module of ``dtype``."""
    return Placement(compute_device(), dtype,
                     offload if offload is not None else model_management.unet_offload_device())


def placement_for(weight_dtype: str = "default", offload: torch.device | None = None) -> Placement:
    """ComfyUI's compute device with a weight-dtype name (today's or a legacy one) resolved on it."""
    return compute_placement(resolve_dtype(weight_dtype, compute_device()), offload)
