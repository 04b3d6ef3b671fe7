"""Memory modes for the 18.9B LTX-2 transformer: fp8 weight storage and transformer-block swapping.

* :func:`store_fp8` keeps every block's linear weights in float8 (e4m3, one scale per output row)
  and dequantises a layer just before its matmul: about half the bf16 weight memory.
* :class:`BlockSwap` keeps all but the first ``resident`` blocks on the offload device and moves
  each one to the compute device only for its own forward.
Together they target a < 24 GB mode (issue 7). LoRAs on fp8 layers run unmerged (x A^T B^T),
so stacking and unloading stay exact.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FP8 = torch.float8_e4m3fn
FP8_MAX = torch.finfo(FP8).max


class Fp8Linear(nn.Module):
    """A linear layer whose weight is stored as float8 with a per-row scale."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        w = linear.weight.detach().float()
        scale = (w.abs().amax(dim=1, keepdim=True) / FP8_MAX).clamp_min(1e-12)
        # Held as raw bytes so Module.to(dtype) (device placement) never upcasts it.
        self.register_buffer("weight_fp8", (w / scale).to(FP8).view(torch.uint8))
        self.register_buffer("scale", scale)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        self.compute_dtype = linear.weight.dtype
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.loras: list[tuple[torch.Tensor, torch.Tensor, float]] = []  # (down [r,in], up [out,r], scale)

    def dequantized(self, dtype: torch.dtype) -> torch.Tensor:
        return (self.weight_fp8.view(FP8).to(torch.float32) * self.scale).to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        out = F.linear(x, self.dequantized(x.dtype), bias)
        for down, up, scale in self.loras:
            out = out + scale * F.linear(F.linear(x, down.to(x)), up.to(x))
        return out


def store_fp8(model: nn.Module, *, scope: str = "transformer_blocks") -> int:
    """Replace the linears under ``scope`` by :class:`Fp8Linear`; returns how many were replaced."""
    root = model.get_submodule(scope)
    targets = [(name, m) for name, m in root.named_modules() if isinstance(m, nn.Linear)]
    for name, linear in targets:
        parent_name, _, child = name.rpartition(".")
        parent = root.get_submodule(parent_name) if parent_name else root
        setattr(parent, child, Fp8Linear(linear))
    return len(targets)


def weight_bytes(model: nn.Module) -> int:
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


class BlockSwap:
    """Forward hooks that stream transformer blocks to ``device`` one at a time."""

    def __init__(self, blocks: nn.ModuleList, device: torch.device | str, resident: int = 0,
                 offload: torch.device | str = "cpu"):
        self.device, self.offload = torch.device(device), torch.device(offload)
        self.swapped = list(blocks)[resident:]
        for block in list(blocks)[:resident]:
            block.to(self.device)
        self.handles = []
        self.moves = 0
        for block in self.swapped:
            block.to(self.offload)
            self.handles.append(block.register_forward_pre_hook(self._load))
            self.handles.append(block.register_forward_hook(self._unload))

    def _load(self, block, args):
        block.to(self.device, non_blocking=True)
        self.moves += 1

    def _unload(self, block, args, output):
        block.to(self.offload, non_blocking=True)

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()
