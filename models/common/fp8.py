"""fp8 (e4m3) weight storage with one scale per tensor, for the big DiTs (Ovi 11B, LTX-2 19B).

A :class:`Fp8Linear` holds its weight as float8_e4m3fn bytes plus a float32 per-tensor scale and
multiplies in a normal dtype (bf16/fp16/fp32) after dequantising, or - opt-in, on GPUs with fp8
tensor cores - quantises the activations too and multiplies in fp8 with ``torch._scaled_mm``.
Weights that are already e4m3 (a released fp8 file) are kept bit for bit with a unit scale.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

FP8 = torch.float8_e4m3fn
FP8_MAX = float(torch.finfo(FP8).max)  # 448
# e4m3 has 3 stored mantissa bits: round-to-nearest is within 2^-4 relative for normal values, and
# within half the subnormal step 2^-9 (times the scale) below the smallest normal 2^-6.
FP8_REL_ERROR = 2.0 ** -4
FP8_SUBNORMAL_ABS_ERROR = 2.0 ** -10
_SCALED_MM_ALIGN = 16  # cuBLAS fp8 GEMMs need K and N multiples of 16


def fp8_scale(t: torch.Tensor) -> torch.Tensor:
    """Per-tensor float32 scale: the power of two that brings amax to at most 448.

    A power of two (rather than amax / 448) makes ``q * scale`` exact in bf16 and fp16 (e4m3 has 4
    significant bits), so dequantising adds no rounding beyond fp8's own; computed without a host sync.
    """
    amax = t.detach().abs().amax().float().clamp(min=1e-30)
    return torch.exp2(torch.ceil(torch.log2(amax / FP8_MAX)))


def quantize_fp8(t: torch.Tensor, scale: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(e4m3 tensor, float32 scale) with ``t ~= q.float() * scale``."""
    scale = fp8_scale(t) if scale is None else scale.float()
    q = (t.detach().float() / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8)
    return q, scale


def dequantize_fp8(q: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return q.to(dtype) * scale.to(dtype)


def fp8_matmul_supported(device: torch.device | str) -> bool:
    """fp8 tensor-core GEMMs: CUDA compute capability 8.9 (Ada) or newer (Hopper, Blackwell)."""
    device = torch.device(device)
    if device.type != "cuda" or not hasattr(torch, "_scaled_mm") or not torch.cuda.is_available():
        return False
    if torch.version.hip:  # ROCm reports gfx9xx as 9.x, but MI300 GEMMs take e4m3fnuz, not the e4m3fn stored here
        return False
    return _cuda_has_fp8(device.index if device.index is not None else torch.cuda.current_device())


@functools.lru_cache(maxsize=None)
def _cuda_has_fp8(index: int) -> bool:
    return torch.cuda.get_device_capability(index) >= (8, 9)


def scaled_fp8_linear(x: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor,
                      bias: torch.Tensor | None, out_dtype: torch.dtype) -> torch.Tensor:
    """``x @ (weight * weight_scale).T + bias`` with x quantised per call to e4m3 and an fp8 GEMM
    (float32 accumulation). ``weight`` is e4m3 [out, in]."""
    shape = x.shape
    # _scaled_mm needs a row-major mat1; a strided x (e.g. a transposed view) would quantise column-major.
    xq, xs = quantize_fp8(x.reshape(-1, shape[-1]).contiguous())
    out = torch._scaled_mm(xq, weight.t(), scale_a=xs, scale_b=weight_scale.float(),
                           bias=None if bias is None else bias.to(out_dtype), out_dtype=out_dtype)
    return out.reshape(*shape[:-1], weight.shape[0])


class Fp8Linear(nn.Module):
    """A Linear whose weight is stored in e4m3 with a per-tensor scale.

    ``compute_dtype``: the dtype inputs are cast to and the product runs in; None follows the input.
    ``fp8_matmul``: quantise the activations too and use the fp8 GEMM where the device has one
    (elsewhere the layer silently uses the dequantised product). ``loras``: (down [r, in], up [out, r],
    scale) pairs run beside the weight, since fp8 storage cannot absorb a delta exactly.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 compute_dtype: torch.dtype | None = None, fp8_matmul: bool = False,
                 device: torch.device | str | None = None, bias_dtype: torch.dtype = torch.float32):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.compute_dtype = compute_dtype
        self.fp8_matmul = fp8_matmul
        # Raw bytes, so a dtype-casting Module.to() (ComfyUI or a Placement) can never upcast the weight.
        self.register_buffer("weight_fp8", torch.zeros(out_features, in_features, dtype=torch.uint8, device=device))
        self.register_buffer("weight_scale", torch.ones((), dtype=torch.float32, device=device))
        self.bias = nn.Parameter(torch.zeros(out_features, dtype=bias_dtype, device=device),
                                 requires_grad=False) if bias else None
        self.loras: list[tuple[torch.Tensor, torch.Tensor, float]] = []

    @classmethod
    @torch.no_grad()
    def from_linear(cls, linear: nn.Linear, *, compute_dtype: torch.dtype | None = None,
                    fp8_matmul: bool = False) -> "Fp8Linear":
        w = linear.weight
        layer = cls(linear.in_features, linear.out_features, linear.bias is not None, compute_dtype=compute_dtype,
                    fp8_matmul=fp8_matmul, device=w.device,
                    bias_dtype=linear.bias.dtype if linear.bias is not None else torch.float32)
        if w.dtype == FP8:
            # A released fp8 file (e.g. Ovi's model_fp8_e4m3fn.safetensors) is a plain cast: keep it as stored.
            q = w.detach()
        else:
            q, scale = quantize_fp8(w)
            layer.weight_scale.copy_(scale)
        layer.weight_fp8 = q.view(torch.uint8)
        if linear.bias is not None:
            layer.bias.copy_(linear.bias.detach())
        return layer

    @property
    def weight(self) -> torch.Tensor:
        return self.weight_fp8.view(FP8)

    def dequantized(self, dtype: torch.dtype) -> torch.Tensor:
        return dequantize_fp8(self.weight, self.weight_scale, dtype)

    def _use_fp8_matmul(self, x: torch.Tensor) -> bool:
        # _scaled_mm has no backward and the activations are quantised detached: an input that needs a
        # gradient takes the dequantised product, or nothing upstream of this layer would train.
        return (self.fp8_matmul and x.dtype in (torch.bfloat16, torch.float16)
                and not (x.requires_grad and torch.is_grad_enabled())
                and self.in_features % _SCALED_MM_ALIGN == 0 and self.out_features % _SCALED_MM_ALIGN == 0
                and fp8_matmul_supported(x.device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.compute_dtype or x.dtype)
        if self._use_fp8_matmul(x):
            out = scaled_fp8_linear(x, self.weight, self.weight_scale, self.bias, x.dtype)
        else:
            out = F.linear(x, self.dequantized(x.dtype), None if self.bias is None else self.bias.to(x.dtype))
        for down, up, scale in self.loras:
            out = out + scale * F.linear(F.linear(x, down.to(x)), up.to(x))
        return out

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"compute_dtype={self.compute_dtype}, fp8_matmul={self.fp8_matmul}")


def linears_to_fp8_(root: nn.Module, *, compute_dtype: torch.dtype | None = None,
                    fp8_matmul=False) -> int:
    """Replace every nn.Linear under ``root`` by :class:`Fp8Linear` in place; returns the count.

    ``fp8_matmul``: a bool, or a predicate on the layer's path under ``root`` choosing which layers
    also quantise their activations; it applies as well to layers already in fp8 (an fp8 release).
    """
    def fast(name: str) -> bool:
        return fp8_matmul(name) if callable(fp8_matmul) else bool(fp8_matmul)

    targets = []
    for name, m in root.named_modules():
        if isinstance(m, Fp8Linear):
            m.fp8_matmul = fast(name)
        elif isinstance(m, nn.Linear):
            targets.append((name, m))
    for name, linear in targets:
        parent_name, _, child = name.rpartition(".")
        parent = root.get_submodule(parent_name) if parent_name else root
        setattr(parent, child, Fp8Linear.from_linear(linear, compute_dtype=compute_dtype, fp8_matmul=fast(name)))
    return len(targets)


def tensor_bytes(module: nn.Module) -> int:
    """Bytes of every parameter and buffer (meta tensors count their would-be size)."""
    seen, total = set(), 0
    for t in list(module.parameters()) + list(module.buffers()):
        if id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()
    return total
