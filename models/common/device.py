"""Device, dtype and offload policy for the pack's models (no ComfyUI imports here).

Nodes pass a :class:`Placement`; inside ComfyUI, ``nodes/model_patch.py`` hands the same modules to
ComfyUI's model manager instead, so both paths share one description of where weights live.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# One weight-dtype vocabulary for every loader: ComfyUI's own names (UNETLoader's weight_dtype, with its
# "default" = the best dtype of the compute device). fp8 stores linears in e4m3 and computes in bf16;
# "_fast" also runs those matmuls as fp8 GEMMs.
WEIGHT_DTYPES = ("default", "bf16", "fp16", "fp32")
FP8_WEIGHT_DTYPES = ("fp8_e4m3fn", "fp8_e4m3fn_fast")
OFFLOAD_MODES = ("none", "block_swap")  # block_swap keeps `resident_blocks` on the device, streams the rest
# Values older saved workflows carry, mapped onto the names above.
LEGACY_NAMES = {
    "auto": "default", "bfloat16": "bf16", "float16": "fp16", "float32": "fp32",
    "fp8_e4m3": "fp8_e4m3fn", "fp8_e4m3_fast": "fp8_e4m3fn_fast", True: "block_swap", False: "none",
}


def canonical_name(value):
    """A weight-dtype or offload value in today's vocabulary (older saved values mapped)."""
    try:
        return LEGACY_NAMES.get(value, value)
    except TypeError:  # unhashable: not a name at all
        return value


def default_dtype(device: torch.device) -> torch.dtype:
    """bf16 on GPUs that support it, fp32 on CPU (CPU bf16 matmuls are slow and less accurate)."""
    if device.type == "cuda":
        # Native bf16 (Ampere and newer, ROCm) of this device: torch.cuda.is_bf16_supported() asks about
        # the current device and also says yes on older GPUs, where bf16 is only emulated (slow).
        native = bool(torch.version.hip) or torch.cuda.get_device_capability(device)[0] >= 8
        return torch.bfloat16 if native else torch.float16
    return torch.float32


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    name = canonical_name(name)
    if name in ("default", None):
        return default_dtype(device)
    try:
        return DTYPES[name]
    except KeyError:
        raise ValueError(f"unknown precision {name!r}; choose one of {', '.join(WEIGHT_DTYPES)}") from None


@dataclass(frozen=True)
class Placement:
    """Where a model computes (``device``, ``dtype``) and where it rests between runs (``offload``)."""

    device: torch.device
    dtype: torch.dtype
    offload: torch.device = torch.device("cpu")
    # False for modules whose storage dtypes are chosen per tensor (fp8 blocks): they only move.
    cast_dtype: bool = True

    def load(self, module: torch.nn.Module) -> torch.nn.Module:
        if not self.cast_dtype:
            return module.to(device=self.device)
        return module.to(device=self.device, dtype=self.dtype)

    def unload(self, module: torch.nn.Module) -> torch.nn.Module:
        module.to(self.offload)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        return module
