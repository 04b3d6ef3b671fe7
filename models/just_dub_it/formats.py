"""fp8 layouts of released single files, read into one shape: the file's tensors with the
quantisation bookkeeping removed, plus a float32 per-tensor scale for every e4m3 weight.

Three layouts occur for LTX-2 and Gemma-3 files (ComfyUI comfy/utils.py ``convert_old_quants`` and
comfy/ops.py ``mixed_precision_ops`` define the first two):

* ComfyUI "scaled fp8" (older): a marker tensor ``<prefix>scaled_fp8`` plus ``<layer>.scale_weight``
  (and optionally ``<layer>.scale_input``) beside each e4m3 ``<layer>.weight``;
* ComfyUI mixed precision (newer): ``<layer>.weight_scale`` / ``<layer>.input_scale`` with the layer's
  format in a ``<layer>.comfy_quant`` uint8 JSON tensor or the header metadata ``_quantization_metadata``;
* Lightricks' own releases (ltx-core ``quantization/fp8_scaled_mm.py``): ``<layer>.weight_scale`` and
  ``<layer>.input_scale`` scalars beside e4m3 weights, with no per-layer format entry;
* a plain cast: e4m3 ``.weight`` tensors and no scales (scale 1). ltx-core's ``fp8_cast`` policy
  casts the block biases to e4m3 as well; such biases are read back as plain casts.

Input scales only matter to an fp8 GEMM that reuses a calibrated activation scale; our fp8 storage
quantises activations per call (or not at all), so they are dropped.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import torch

from ..common.checkpoint import CheckpointError
from ..common.fp8 import FP8

SCALED_FP8_MARKER = "scaled_fp8"
WEIGHT_SCALE_SUFFIXES = (".scale_weight", ".weight_scale")
INPUT_SCALE_SUFFIXES = (".scale_input", ".input_scale")
QUANT_CONFIG_SUFFIX = ".comfy_quant"
QUANT_METADATA_KEY = "_quantization_metadata"
# The only per-layer format our per-tensor e4m3 storage holds bit for bit.
SUPPORTED_FORMATS = ("float8_e4m3fn",)


@dataclass
class Fp8Layout:
    """``tensors``: every model tensor of the file (fp8 weights as stored); ``scales``: weight key ->
    float32 scalar with ``weight ~= tensors[key].float() * scale``."""

    tensors: dict[str, torch.Tensor]
    scales: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def quantized(self) -> bool:
        return bool(self.scales)

    def dequantized(self, dtype: torch.dtype | None = None, *, skip: Iterable[str] = ()) -> dict[str, torch.Tensor]:
        """The tensors with every fp8 weight outside the ``skip`` prefixes multiplied out (to ``dtype``,
        float32 when None); fp8 weights under ``skip`` stay as stored (their loader keeps them in fp8)."""
        skip = tuple(skip)
        out = {}
        for key, value in self.tensors.items():
            if key in self.scales and not (skip and key.startswith(skip)):
                value = value.float().mul_(self.scales[key]).to(dtype or torch.float32)
            out[key] = value
        return out


def _layer_formats(checkpoint: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None) -> dict[str, str]:
    formats = {}
    raw = (metadata or {}).get(QUANT_METADATA_KEY)
    if raw:
        for layer, conf in json.loads(raw).get("layers", {}).items():
            formats[layer] = conf.get("format", "") if isinstance(conf, dict) else str(conf)
    for key, value in checkpoint.items():
        if key.endswith(QUANT_CONFIG_SUFFIX):
            conf = json.loads(bytes(value.to(torch.uint8).flatten().tolist()).decode("utf-8"))
            formats[key[: -len(QUANT_CONFIG_SUFFIX)]] = conf.get("format", "")
    return formats


def read_fp8_layout(checkpoint: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None, *,
                    context: str = "checkpoint") -> Fp8Layout:
    """Split a file into model tensors and fp8 scales; raise naming every key it cannot hold."""
    problems: list[str] = []
    for layer, fmt in sorted(_layer_formats(checkpoint, metadata).items()):
        if fmt not in SUPPORTED_FORMATS:
            problems.append(f"{layer}: quantisation format {fmt!r} (only {', '.join(SUPPORTED_FORMATS)} is supported)")

    tensors, file_scales = {}, {}
    for key, value in checkpoint.items():
        if key.rsplit(".", 1)[-1] == SCALED_FP8_MARKER or key.endswith(QUANT_CONFIG_SUFFIX):
            continue
        if key.endswith(INPUT_SCALE_SUFFIXES):
            continue
        suffix = next((s for s in WEIGHT_SCALE_SUFFIXES if key.endswith(s)), None)
        if suffix is not None:
            file_scales[key[: -len(suffix)] + ".weight"] = (key, value)
            continue
        tensors[key] = value

    scales = {}
    for key, value in tensors.items():
        if value.dtype == FP8 and key.endswith(".bias") and key[: -len(".bias")] + ".weight" not in file_scales:
            tensors[key] = value.float()  # a plain e4m3 cast of a small vector: nothing to keep in fp8
        elif value.dtype == FP8:
            if not key.endswith(".weight"):
                problems.append(f"{key}: float8_e4m3fn tensor that is not a layer weight")
                continue
            _, scale = file_scales.pop(key, (None, torch.ones(())))
            if scale.numel() != 1:
                problems.append(f"{key}: scale of shape {tuple(scale.shape)} (only one scale per tensor is supported)")
                continue
            scales[key] = scale.detach().float().reshape(())
        elif value.dtype.is_floating_point and value.element_size() == 1:
            problems.append(f"{key}: {value.dtype} weights (only float8_e4m3fn is supported)")
    for weight_key, (scale_key, _) in sorted(file_scales.items()):
        problems.append(f"{scale_key}: a weight scale without a float8_e4m3fn '{weight_key}'")
    if problems:
        raise CheckpointError(f"{context}: unsupported quantised layout: " + "; ".join(problems))
    return Fp8Layout(tensors, scales)
