"""Device, dtype and offload policy for the pack's models (no ComfyUI imports here).

Nodes pass a :class:`Placement`; inside ComfyUI, ``nodes/model_patch.py`` hands the same modules to
ComfyUI's model manager instead, so both paths share one description of where weights live.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def best_device() -> torch.device:
    wanted = os.environ.get("SOUNDSTAGE_DEVICE")
    if wanted:
        return torch.device(wanted)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    """bf16 on GPUs that support it, fp32 on CPU (CPU bf16 matmuls are slow and less accurate)."""
    if device.type == "cuda":
        # Native bf16 (Ampere and newer, ROCm) of this device: torch.cuda.is_bf16_supported() asks about
        # the current device and also says yes on older GPUs, where bf16 is only emulated (slow).
        native = bool(torch.version.hip) or torch.cuda.get_device_capability(device)[0] >= 8
        return torch.bfloat16 if native else torch.float16
    return torch.float32


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name in ("auto", "default", None):
        return default_dtype(device)
    try:
        return DTYPES[name]
    except KeyError:
        raise ValueError(f"unknown precision {name!r}; choose one of auto, {', '.join(DTYPES)}") from None


@dataclass(frozen=True)
class Placement:
    """Where a model computes (``device``, ``dtype``) and where it rests between runs (``offload``)."""

    device: torch.device
    dtype: torch.dtype
    offload: torch.device = torch.device("cpu")
    # False for modules whose storage dtypes are chosen per tensor (fp8 blocks): they only move.
    cast_dtype: bool = True

    @classmethod
    def auto(cls, precision: str = "auto", device: str | None = None) -> "Placement":
        dev = torch.device(device) if device else best_device()
        return cls(device=dev, dtype=resolve_dtype(precision, dev))

    def load(self, module: torch.nn.Module) -> torch.nn.Module:
        if not self.cast_dtype:
            return module.to(device=self.device)
        return module.to(device=self.device, dtype=self.dtype)

    def unload(self, module: torch.nn.Module) -> torch.nn.Module:
        module.to(self.offload)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        return module
