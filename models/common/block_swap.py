"""Block swapping: run a DiT whose blocks do not all fit on the GPU.

The model's blocks are grouped into *units* run in order (an LTX-2 transformer block; an Ovi
fusion block = video block i + audio block i). The first ``resident`` units live on the compute
device; the others live in CPU memory (pinned, so copies are asynchronous) and are streamed in:
while unit i computes, unit i+1 is copied on a side CUDA stream, and an event makes the compute
stream wait for that copy before unit i+1 runs. A streamed unit's device copy is dropped after
its forward, so at most ``resident + 2`` units occupy the device. The CPU tensors are never
replaced, so nothing is copied back and in-place edits (LoRA merges) apply to the next stream-in.
On CPU (or any non-CUDA device) the same bookkeeping runs with synchronous copies.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import torch
from torch import nn

Unit = Sequence[nn.Module]


def _own_tensors(module: nn.Module) -> Iterator[tuple[dict, str, torch.Tensor]]:
    for mod in module.modules():
        for store in (mod._parameters, mod._buffers):
            for name, t in store.items():
                if t is not None:
                    yield store, name, t


def _as_device_tensor(original: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    return nn.Parameter(data, requires_grad=False) if isinstance(original, nn.Parameter) else data


@dataclass
class _Staged:
    """Device copies of one unit's tensors, ready once ``event`` has completed."""

    copies: list[tuple[dict, str, torch.Tensor, torch.Tensor]] = field(default_factory=list)  # store, name, home, copy
    event: object = None


class BlockSwap:
    """Keeps ``resident`` units on ``device`` and streams the others from ``storage``.

    Wire it with :meth:`around` (a context manager per unit index, for models that loop over their
    blocks themselves) or :meth:`attach_hooks` (forward hooks, for library models). Nothing moves
    until :meth:`place`; :meth:`release` returns every device copy and the non-block weights.
    """

    def __init__(self, root: nn.Module, units: Sequence[Unit | nn.Module], device: torch.device | str,
                 resident: int = 0, *, storage: torch.device | str = "cpu", prefetch: bool = True):
        self.root = root
        self.units: list[tuple[nn.Module, ...]] = [tuple(u) if isinstance(u, (list, tuple)) else (u,) for u in units]
        if not 0 <= resident <= len(self.units):
            raise ValueError(f"resident blocks must be in 0..{len(self.units)}, got {resident}")
        self.device, self.storage = torch.device(device), torch.device(storage)
        self.resident = resident
        self.prefetch = prefetch
        self.loads = 0  # streamed unit entries
        self.prefetched = 0  # of those, served by a copy started during the previous unit
        self.max_staged = 0  # most streamed units on the device at once
        self._staged: dict[int, _Staged] = {}
        self._live: dict[int, _Staged] = {}
        self._hooks: list = []
        self._stream = None
        self._pinned = False

    # ------------------------------------------------------------------ placement
    @property
    def streamed(self) -> range:
        return range(self.resident, len(self.units))

    def _is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def _outside_units(self) -> Iterator[nn.Module]:
        """Modules of ``root`` that belong to no unit, each yielded once (their own tensors only)."""
        in_units = {id(m) for unit in self.units for block in unit for m in block.modules()}
        for mod in self.root.modules():
            if id(mod) not in in_units:
                yield mod

    def _move_own(self, mod: nn.Module, device: torch.device) -> None:
        for store in (mod._parameters, mod._buffers):
            for name, t in store.items():
                if t is not None and t.device != device:
                    store[name] = _as_device_tensor(t, t.data.to(device))

    def place(self, device: torch.device | str | None = None) -> None:
        """Non-block weights and resident units to the device, streamed units to (pinned) storage."""
        if device is not None:
            self.device = torch.device(device)
        for mod in self._outside_units():
            self._move_own(mod, self.device)
        for i, unit in enumerate(self.units):
            for block in unit:
                block.to(self.device if i < self.resident else self.storage)
        if self._is_cuda() and self.storage.type == "cpu" and not self._pinned:
            for i in self.streamed:
                for block in self.units[i]:
                    for store, name, t in _own_tensors(block):
                        store[name] = _as_device_tensor(t, t.data.pin_memory())
            self._pinned = True

    def release(self, offload: torch.device | str = "cpu") -> None:
        """Drop every device copy and move the non-block weights and resident units to ``offload``."""
        self._restore_all()
        offload = torch.device(offload)
        for mod in self._outside_units():
            self._move_own(mod, offload)
        for i in range(self.resident):
            for block in self.units[i]:
                block.to(offload)

    def resident_bytes(self) -> int:
        """Device bytes while running: non-block weights, resident units and two streamed units."""
        own = sum(t.numel() * t.element_size() for mod in self._outside_units()
                  for t in list(mod._parameters.values()) + list(mod._buffers.values()) if t is not None)
        sizes = [sum(t.numel() * t.element_size() for b in u for _, _, t in _own_tensors(b)) for u in self.units]
        streamed = sorted(sizes[self.resident:], reverse=True)[:2]
        return own + sum(sizes[: self.resident]) + sum(streamed)

    # ------------------------------------------------------------------ streaming
    def _side_stream(self):
        if self._stream is None:
            self._stream = torch.cuda.Stream(device=self.device)
        return self._stream

    def _stage(self, i: int, asynchronous: bool) -> _Staged:
        staged = _Staged()
        if asynchronous and self._is_cuda():
            stream = self._side_stream()
            with torch.cuda.stream(stream):
                for block in self.units[i]:
                    for store, name, t in _own_tensors(block):
                        staged.copies.append((store, name, t, t.data.to(self.device, non_blocking=True)))
                staged.event = torch.cuda.Event()
                staged.event.record(stream)
        else:
            for block in self.units[i]:
                for store, name, t in _own_tensors(block):
                    staged.copies.append((store, name, t, t.data.to(self.device, non_blocking=self._is_cuda())))
        return staged

    def enter(self, i: int) -> None:
        if i >= self.resident:
            staged = self._staged.pop(i, None)
            if staged is None:
                staged = self._stage(i, asynchronous=False)
            else:
                self.prefetched += 1
            if staged.event is not None:
                current = torch.cuda.current_stream(self.device)
                current.wait_event(staged.event)
                for _, _, _, copy in staged.copies:
                    copy.record_stream(current)  # allocated on the side stream, freed after compute uses it
            for store, name, home, copy in staged.copies:
                store[name] = _as_device_tensor(home, copy)
            self._live[i] = staged
            self.loads += 1
        nxt = i + 1
        if self.prefetch and nxt in self.streamed and nxt not in self._staged and nxt not in self._live:
            self._staged[nxt] = self._stage(nxt, asynchronous=True)
        self.max_staged = max(self.max_staged, len(self._live) + len(self._staged))

    def exit(self, i: int) -> None:
        staged = self._live.pop(i, None)
        if staged is not None:
            for store, name, home, _ in staged.copies:
                store[name] = home

    @contextmanager
    def around(self, i: int):
        self.enter(i)
        try:
            yield
        finally:
            self.exit(i)

    def _restore_all(self) -> None:
        for i in list(self._live):
            self.exit(i)
        self._staged.clear()

    # ------------------------------------------------------------------ wiring for library models
    def attach_hooks(self) -> "BlockSwap":
        """Forward hooks on each unit's first and last module (units run in order)."""
        self.detach_hooks()
        for i, unit in enumerate(self.units):
            self._hooks.append(unit[0].register_forward_pre_hook(lambda mod, args, i=i: self.enter(i)))
            # always_call: a forward that raises still drops its device copies (a LoRA unmerge after
            # the error must edit the stored weights, not a stale copy).
            self._hooks.append(unit[-1].register_forward_hook(lambda mod, args, out, i=i: self.exit(i),
                                                              always_call=True))
        return self

    def detach_hooks(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks.clear()
        self._restore_all()


def memory_modes(estimate: Callable[..., int], residents: Sequence[int]) -> list[dict]:
    """Device weight GiB per memory mode: ``estimate(fp8=..., resident=...)`` bytes (``resident=None``
    = every block on the device) for bf16/fp8, fully resident and with each block-swap count."""
    gib = 2 ** 30
    rows = [{"mode": m, "resident": "all", "gib": estimate(fp8=m == "fp8", resident=None) / gib} for m in ("bf16", "fp8")]
    for fp8 in (False, True):
        for k in residents:
            rows.append({"mode": ("fp8" if fp8 else "bf16") + " + block swap", "resident": k,
                         "gib": estimate(fp8=fp8, resident=k) / gib})
    return rows
