"""Ovi's 11B fusion model in less memory (issue 6): the shared fp8 storage and block swap, wired to
Ovi's twin towers. A swap unit is fusion block i (video block i + audio block i), run by the
fusion loop through ``model.block_context``."""
from __future__ import annotations

import torch
from torch import nn

from ..common.block_swap import BlockSwap
from ..common.fp8 import FP8, Fp8Linear, linears_to_fp8_, quantize_fp8, tensor_bytes

__all__ = ["FP8_DTYPE", "FP8_MATMUL_SCOPES", "BlockSwap", "Fp8Linear", "cast_non_fp8_", "fp8_blocks_",
           "ovi_block_swap", "quantize_fp8", "resident_weight_bytes"]

FP8_DTYPE = FP8
FP8_MATMUL_SCOPES = ("none", "ffn", "all")


def fp8_blocks_(model: nn.Module, compute_dtype: torch.dtype = torch.bfloat16, fp8_matmul: str = "none") -> int:
    """Every nn.Linear inside the fusion blocks to fp8 storage, in place; returns the count.

    Embeddings, heads and norms keep the load dtype. ``fp8_matmul``: where activations are quantised
    too - nowhere, the FFNs only (most of the FLOPs; attention keeps bf16 inputs) or every block Linear.
    """
    if fp8_matmul not in FP8_MATMUL_SCOPES:
        raise ValueError(f"fp8_matmul must be one of {FP8_MATMUL_SCOPES}, got {fp8_matmul!r}")
    fast = {"none": False, "all": True, "ffn": lambda name: name.startswith("ffn.")}[fp8_matmul]
    return sum(linears_to_fp8_(block, compute_dtype=compute_dtype, fp8_matmul=fast)
               for tower in (model.video_model, model.audio_model) for block in tower.blocks)


def cast_non_fp8_(model: nn.Module, dtype: torch.dtype = torch.bfloat16) -> nn.Module:
    """Every floating tensor outside the fp8 weights to ``dtype`` (fp8 leftovers outside blocks included)."""
    for mod in model.modules():
        for name, p in list(mod._parameters.items()):
            if p is not None and p.is_floating_point() and p.dtype != dtype:
                mod._parameters[name] = nn.Parameter(p.detach().to(dtype), requires_grad=False)
    return model


def _units(model: nn.Module) -> list[tuple[nn.Module, nn.Module]]:
    return [(model.video_model.blocks[i], model.audio_model.blocks[i]) for i in range(model.num_blocks)]


def ovi_block_swap(model: nn.Module, device: torch.device | str, resident: int = 0, *,
                   prefetch: bool = True, place: bool = True) -> BlockSwap:
    """A :class:`BlockSwap` over the fusion blocks, hooked into the fusion loop."""
    swap = BlockSwap(model, _units(model), device, resident, prefetch=prefetch)
    if place:
        swap.place()
    model.block_context = swap.around
    return swap


def resident_weight_bytes(model: nn.Module, resident: int | None = None) -> int:
    """Device weight bytes while sampling: everything, or with block swap the non-block weights,
    ``resident`` fusion blocks and the two streamed ones in flight. Works on a meta-device model."""
    if resident is None:
        return tensor_bytes(model)
    return BlockSwap(model, _units(model), "meta", resident).resident_bytes()


def estimate_resident_bytes(config, *, fp8: bool, resident: int | None, dtype: torch.dtype = torch.bfloat16) -> int:
    """Device weight bytes of the fusion model at ``config`` in a memory mode, computed on the meta
    device (nothing allocated): ``dtype`` weights or fp8 blocks, everything resident or block swap."""
    from .fusion import OviFusion

    with torch.device("meta"):
        model = OviFusion(config).to(dtype)
    if fp8:
        fp8_blocks_(model, compute_dtype=dtype)
        cast_non_fp8_(model, dtype)
    return resident_weight_bytes(model, resident)
