"""LoRA files in the ComfyUI / JUST-DUB-IT trainer format, merged into the LTX-2 transformer.

Format (ltx_trainer): ``diffusion_model.<module>.lora_A.weight`` [r, in] and ``.lora_B.weight``
[out, r], no alpha; ltx_core fuses ``W += strength * B @ A`` (loader/fuse_loras.py). Kohya-style
``lora_down`` / ``lora_up`` (+ optional ``alpha``, scale alpha / r) are read as well.
Merging keeps the forward at base-model cost; unmerging subtracts the same delta in float32.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import torch
from torch import nn

from ..common.checkpoint import CheckpointError, load_file
from .memory import Fp8Linear
from .transformer import native_module_name

_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "transformer.", "base_model.model.")
_PAIRS = ((".lora_A.weight", ".lora_B.weight"), (".lora_down.weight", ".lora_up.weight"))


@dataclass
class LoraPair:
    down: torch.Tensor  # [r, in]
    up: torch.Tensor  # [out, r]
    scale: float = 1.0

    def delta(self, dtype=torch.float32, device=None) -> torch.Tensor:
        return (self.up.to(device, dtype) @ self.down.to(device, dtype)) * self.scale


@dataclass
class Lora:
    """Low-rank deltas keyed by diffusers module path (e.g. ``transformer_blocks.0.attn1.to_q``)."""

    pairs: dict[str, LoraPair]
    name: str = "lora"

    @property
    def rank(self) -> int:
        return max(p.down.shape[0] for p in self.pairs.values())


def _strip(key: str) -> str:
    for p in _PREFIXES:
        if key.startswith(p):
            return key[len(p):]
    return key


def lora_from_state_dict(sd: Mapping[str, torch.Tensor], name: str = "lora") -> Lora:
    downs, ups, alphas = {}, {}, {}
    leftovers = []
    for key, value in sd.items():
        k = _strip(key)
        for down_sfx, up_sfx in _PAIRS:
            if k.endswith(down_sfx):
                downs[k[: -len(down_sfx)]] = value
                break
            if k.endswith(up_sfx):
                ups[k[: -len(up_sfx)]] = value
                break
        else:
            if k.endswith(".alpha"):
                alphas[k[: -len(".alpha")]] = float(value)
            else:
                leftovers.append(key)
    if leftovers:
        raise CheckpointError(f"LoRA {name}: {len(leftovers)} key(s) that are not LoRA factors: {', '.join(leftovers[:8])}")
    unpaired = sorted(set(downs) ^ set(ups))
    if unpaired:
        raise CheckpointError(f"LoRA {name}: unpaired down/up factors for {', '.join(unpaired)}")
    if not downs:
        raise CheckpointError(f"LoRA {name}: no lora_A/lora_B (or lora_down/lora_up) weights found")
    pairs = {}
    for module, down in downs.items():
        rank = down.shape[0]
        scale = alphas[module] / rank if module in alphas else 1.0
        pairs[native_module_name(module)] = LoraPair(down, ups[module], scale)
    return Lora(pairs, name)


def read_lora(path: str | Path) -> Lora:
    return lora_from_state_dict(load_file(path), Path(path).stem)


def _linear(model: nn.Module, path: str) -> nn.Module:
    try:
        module = model.get_submodule(path)
    except AttributeError:
        module = None
    if not isinstance(module, (nn.Linear, Fp8Linear)):
        raise CheckpointError(f"LoRA targets {path!r}, which is not a linear layer of this LTX-2 transformer")
    return module


@dataclass
class MergedLora:
    lora: Lora
    strength: float
    # (layer, pair, the entry run beside an fp8 layer or None where the delta went into the weight)
    modules: list[tuple[nn.Module, LoraPair, tuple | None]] = field(default_factory=list)


@torch.no_grad()
def merge_lora(model: nn.Module, lora: Lora, strength: float = 1.0, *,
               device: torch.device | str | None = None) -> MergedLora:
    """``W += strength * B @ A`` for every pair (after checking every target first).

    fp8 layers run the pair beside their weight instead, from ``device`` (default: where the layer's
    weight is): the compute device, so a block-swapped layer does not copy it in on every call.
    """
    targets = []
    for path, pair in lora.pairs.items():
        linear = _linear(model, path)
        expected = (linear.out_features, linear.in_features)
        got = (pair.up.shape[0], pair.down.shape[1])
        if got != expected:
            raise CheckpointError(f"LoRA {lora.name}: {path} delta {got} does not fit weight {expected}")
        targets.append((linear, pair))
    merged = MergedLora(lora, strength)
    for linear, pair in targets:
        entry = None
        if isinstance(linear, Fp8Linear):  # fp8 weights cannot absorb a delta: run it beside them
            dev = device or linear.weight_fp8.device
            entry = (pair.down.to(dev), pair.up.to(dev), strength * pair.scale)
            linear.loras.append(entry)
        else:
            w = linear.weight
            w.copy_((w.float() + strength * pair.delta(device=w.device)).to(w.dtype))
        merged.modules.append((linear, pair, entry))
    return merged


@torch.no_grad()
def unmerge_lora(merged: MergedLora) -> None:
    for linear, pair, entry in merged.modules:
        if entry is not None:
            linear.loras.pop(next(i for i, e in enumerate(linear.loras) if e is entry))  # this merge's, not a twin's
            continue
        w = linear.weight
        w.copy_((w.float() - merged.strength * pair.delta(device=w.device)).to(w.dtype))
    merged.modules.clear()


@contextmanager
def loras_merged(model: nn.Module, loras: Sequence[tuple[Lora, float]], *,
                 device: torch.device | str | None = None) -> Iterator[None]:
    """Stack several LoRAs for the duration of a sampling run; the model is restored afterwards."""
    applied = []
    try:
        for lora, strength in loras:
            if strength != 0.0:
                applied.append(merge_lora(model, lora, strength, device=device))
        yield
    finally:
        for merged in reversed(applied):
            unmerge_lora(merged)
