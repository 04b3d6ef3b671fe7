"""Running the 11B fusion model in less memory: fp8 weight storage and block swapping.

fp8: every Linear inside the fusion blocks stores its weight as float8 e4m3 with one float32
scale per tensor (amax / 448) and multiplies in bfloat16 after dequantising. Embeddings, heads and
norms stay in the load dtype. Block swap: only ``resident`` fusion blocks (video + audio block i)
stay on the compute device; the rest live in CPU memory (pinned when CUDA is used) and are copied in
just before they run and dropped right after.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

FP8_DTYPE = torch.float8_e4m3fn
FP8_MAX = 448.0  # largest finite e4m3fn value


def quantize_fp8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-tensor scaled e4m3: returns (fp8 tensor, float32 scale) with w ~= q.float() * scale."""
    amax = w.detach().abs().max().float().clamp(min=1e-12)
    scale = amax / FP8_MAX
    q = (w.detach().float() / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8_DTYPE)
    return q, scale


class Fp8Linear(nn.Module):
    """Linear with fp8 weight storage; ``compute_dtype`` is what the product runs in.

    ``fp8_matmul``: also quantise the activations (per call, per tensor) and multiply in fp8 with
    ``torch._scaled_mm`` (fp8 tensor cores on Ada/Hopper), accumulating in float32.
    """

    def __init__(self, linear: nn.Linear, compute_dtype: torch.dtype = torch.bfloat16, fp8_matmul: bool = False):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.compute_dtype = compute_dtype
        self.fp8_matmul = fp8_matmul
        if linear.weight.dtype == FP8_DTYPE:
            # Already e4m3 (Ovi's model_fp8_e4m3fn.safetensors is a plain cast): keep it, unit scale.
            q, scale = linear.weight.detach(), torch.tensor(1.0)
        else:
            q, scale = quantize_fp8(linear.weight)
        self.weight = nn.Parameter(q, requires_grad=False)
        self.register_buffer("weight_scale", scale)
        self.bias = None if linear.bias is None else nn.Parameter(
            linear.bias.detach().to(compute_dtype), requires_grad=False)

    def dequantized_weight(self) -> torch.Tensor:
        return self.weight.to(self.compute_dtype) * self.weight_scale.to(self.compute_dtype)

    def _scaled_mm_ok(self, x: torch.Tensor) -> bool:
        if not self.fp8_matmul or self.compute_dtype not in (torch.bfloat16, torch.float16):
            return False
        # cuBLAS fp8 GEMMs need 16-aligned sizes.
        return x.device.type == "cpu" or (self.in_features % 16 == 0 and self.out_features % 16 == 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._scaled_mm_ok(x):
            return F.linear(x.to(self.compute_dtype), self.dequantized_weight(), self.bias)
        shape = x.shape
        xq, xs = quantize_fp8(x.reshape(-1, self.in_features))
        out = torch._scaled_mm(xq, self.weight.t(), scale_a=xs.to(x.device), scale_b=self.weight_scale.float(),
                               bias=self.bias, out_dtype=self.compute_dtype)
        return out.reshape(*shape[:-1], self.out_features)


FP8_MATMUL_SCOPES = ("none", "ffn", "all")


def fp8_blocks_(model: nn.Module, compute_dtype: torch.dtype = torch.bfloat16, fp8_matmul: str = "none") -> int:
    """Swap every nn.Linear under ``*.blocks.*`` for :class:`Fp8Linear` in place; returns the count.

    ``fp8_matmul``: where activations are quantised too: nowhere, in the FFNs only (most of the
    FLOPs; attention projections keep bf16 inputs) or in every block Linear.
    """
    if fp8_matmul not in FP8_MATMUL_SCOPES:
        raise ValueError(f"fp8_matmul must be one of {FP8_MATMUL_SCOPES}, got {fp8_matmul!r}")
    count = 0
    for tower in (model.video_model, model.audio_model):
        for block in tower.blocks:
            for name, child in list(block.named_modules()):
                for cname, sub in list(child.named_children()):
                    if isinstance(sub, nn.Linear):
                        fast = fp8_matmul == "all" or (fp8_matmul == "ffn" and name == "ffn")
                        setattr(child, cname, Fp8Linear(sub, compute_dtype, fp8_matmul=fast))
                        count += 1
    return count


def cast_non_fp8_(model: nn.Module, dtype: torch.dtype = torch.bfloat16) -> nn.Module:
    """Everything except Fp8Linear weights/scales to ``dtype`` (fp8 leftovers outside blocks included)."""
    for mod in model.modules():
        if isinstance(mod, Fp8Linear):
            continue
        for name, p in list(mod._parameters.items()):
            if p is not None and p.is_floating_point() and p.dtype != dtype:
                mod._parameters[name] = nn.Parameter(p.detach().to(dtype), requires_grad=False)
    return model


class BlockSwap:
    """Keep the first ``resident`` fusion blocks on ``device``; stream the rest in per forward."""

    def __init__(self, model: nn.Module, device: str | torch.device, resident: int = 0,
                 storage: str | torch.device = "cpu"):
        self.model, self.device, self.storage = model, torch.device(device), torch.device(storage)
        n = model.num_blocks
        if not 0 <= resident <= n:
            raise ValueError(f"resident blocks must be in 0..{n}, got {resident}")
        self.resident = resident
        self.loads = 0
        pin = self.device.type == "cuda" and self.storage.type == "cpu"
        for i in range(n):
            for block in self._pair(i):
                block.to(self.device if i < resident else self.storage)
                if pin and i >= resident:
                    for p in block.parameters():
                        p.data = p.data.pin_memory()
        model.block_context = self.around

    def _pair(self, i: int):
        return self.model.video_model.blocks[i], self.model.audio_model.blocks[i]

    @contextmanager
    def around(self, i: int):
        if i < self.resident:
            yield
            return
        saved = []
        for block in self._pair(i):
            for mod in block.modules():
                for store in (mod._parameters, mod._buffers):
                    for name, t in store.items():
                        if t is not None:
                            saved.append((store, name, t))
                            moved = t.data.to(self.device, non_blocking=True)
                            store[name] = nn.Parameter(moved, requires_grad=False) if isinstance(t, nn.Parameter) else moved
        self.loads += 1
        try:
            yield
        finally:
            for store, name, t in saved:
                store[name] = t

    def detach(self) -> None:
        self.model.block_context = None
