"""Block swapping: run a DiT whose blocks do not all fit on the GPU.

The model's blocks are grouped into *units* run in order (an LTX-2 transformer block; an Ovi
fusion block = video block i + audio block i). The first ``resident`` units live on the compute
device; the others live in CPU memory (pinned, so copies are asynchronous) and are streamed in:
while unit i computes, unit i+1 is copied on a side CUDA stream, and an event makes the compute
stream wait for that copy before unit i+1 runs. A streamed unit's device copy is dropped after
its forward, so at most ``resident + 2`` units occupy the device. The CPU tensors are never
replaced, so nothing is copied back and in-place edits (LoRA merges) apply to the next stream-in.
On CPU (or any non-CUDA device) the same bookkeeping runs with synchronous copies.

On CUDA the host runs ahead of the GPU, so host-side waits keep those promises. The next unit is
staged when the host leaves unit i (unit i's kernels are queued by then, so the GPU stays busy),
after waiting until the compute stream is past unit i-1: the caching allocator reuses a dropped
unit's memory only then, and without the wait every unit the host ran ahead of would hold its own
copy. A unit's exit also waits until its copies have read the pinned tensors, since a LoRA merge or
unmerge right after the forward returns would otherwise race a pending copy.
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


def _moved(original: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    """``data`` replacing ``original`` for good (a move, or pinning): a parameter stays trainable if it was."""
    return nn.Parameter(data, original.requires_grad) if isinstance(original, nn.Parameter) else data


def _device_copy(home: torch.Tensor, device: torch.device, non_blocking: bool) -> torch.Tensor:
    """What a unit computes with: a detached copy, or - for a trainable tensor under autograd - a
    differentiable one (installed as is, not re-wrapped as a leaf), so gradients reach ``home``."""
    if home.requires_grad and torch.is_grad_enabled():
        return home.to(device, non_blocking=non_blocking)
    return _as_device_tensor(home, home.data.to(device, non_blocking=non_blocking))


_PIN_ALIGN = 512  # bytes between packed tensors (any dtype's alignment; DMA-friendly)
_PIN_MIN_CHUNK = 64 * 2 ** 20


def _pow2(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


def pack_pinned(entries: list[tuple[dict, str, torch.Tensor]], *, pin: bool = True,
                min_chunk: int = _PIN_MIN_CHUNK) -> list[torch.Tensor]:
    """Copy each ``(store, name, tensor)`` into shared host chunks and install views of them in its
    place (consuming ``entries``, so each original can be freed as soon as it is copied); returns the
    chunks, page-locked with ``pin``.

    torch's pinned-memory allocator rounds every allocation up to a power of two, so pinning tensor
    by tensor costs up to twice the host RAM (Ovi's 3072-wide blocks: 1.66x). Chunks that are
    themselves powers of two, filled first-fit by decreasing size, waste only their unfilled tails.
    """
    sizes = [t.numel() * t.element_size() for _, _, t in entries]
    if not sizes:
        return []
    chunk = _pow2(max(max(sizes), min(sum(sizes), min_chunk)))
    fill: list[int] = []
    plan: list[list[tuple[int, int]]] = []  # per chunk: (entry index, byte offset)
    for k in sorted(range(len(sizes)), key=lambda k: -sizes[k]):
        for c, used in enumerate(fill):
            offset = -(-used // _PIN_ALIGN) * _PIN_ALIGN
            if offset + sizes[k] <= chunk:
                break
        else:
            c, offset = len(fill), 0
            fill.append(0)
            plan.append([])
        fill[c] = offset + sizes[k]
        plan[c].append((k, offset))
    chunks = []
    for c, items in enumerate(plan):
        buf = torch.empty(_pow2(fill[c]), dtype=torch.uint8, pin_memory=pin)
        for k, offset in items:
            store, name, t = entries[k]
            entries[k] = None
            view = buf[offset: offset + sizes[k]].view(t.dtype).view(t.shape)
            view.copy_(t.data)
            store[name] = _moved(t, view)
        chunks.append(buf)
    return chunks


@dataclass
class _Staged:
    """Device copies of one unit's tensors, ready once ``event`` has completed."""

    copies: list[tuple[dict, str, torch.Tensor, torch.Tensor]] = field(default_factory=list)  # store, name, home, copy
    event: object = None  # side-stream copies done: the compute stream waits for it
    copied: object = None  # CUDA: every copy done (the host waits for it before the home tensors may change)


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
        self._dropped = None  # CUDA event: the compute stream is past the streamed unit exited last

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
                    store[name] = _moved(t, t.data.to(device))

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
            pack_pinned([e for i in self.streamed for block in self.units[i] for e in _own_tensors(block)])
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
                        staged.copies.append((store, name, t, _device_copy(t, self.device, True)))
                staged.event = torch.cuda.Event()
                staged.event.record(stream)
            staged.copied = staged.event
        else:
            for block in self.units[i]:
                for store, name, t in _own_tensors(block):
                    staged.copies.append((store, name, t, _device_copy(t, self.device, self._is_cuda())))
            if self._is_cuda():
                staged.copied = torch.cuda.Event()
                staged.copied.record(torch.cuda.current_stream(self.device))
        return staged

    def _wait_for_dropped(self) -> None:
        """Host wait until the unit exited last has run, so staging reuses its memory (module docstring)."""
        if self._dropped is not None:
            self._dropped.synchronize()
            self._dropped = None

    def _drop_staged(self) -> None:
        for staged in self._staged.values():
            if staged.copied is not None:
                staged.copied.synchronize()  # its copies still read the pinned tensors
        self._staged.clear()

    def enter(self, i: int) -> None:
        if i == 0:
            self._drop_staged()  # a new pass: anything staged was left by a pass that raised
        if i >= self.resident:
            staged = self._staged.pop(i, None)
            if staged is None:
                self._wait_for_dropped()
                staged = self._stage(i, asynchronous=False)
            else:
                self.prefetched += 1
            if staged.event is not None:
                current = torch.cuda.current_stream(self.device)
                current.wait_event(staged.event)
                for _, _, _, copy in staged.copies:
                    copy.record_stream(current)  # allocated on the side stream, freed after compute uses it
            for store, name, home, copy in staged.copies:
                store[name] = copy
            self._live[i] = staged
            self.loads += 1
        self.max_staged = max(self.max_staged, len(self._live) + len(self._staged))

    def _uninstall(self, i: int):
        """Unit ``i``'s stored tensors back in place of its copies. On CUDA, returns the event of its
        copies and one marking where the compute stream is done with them (else two Nones)."""
        staged = self._live.pop(i, None)
        if staged is None:
            return None, None
        for store, name, home, _ in staged.copies:
            store[name] = home
        staged.copies.clear()  # freed now, so the allocator's reuse events precede the one below
        if staged.copied is None:
            return None, None
        dropped = torch.cuda.Event()
        dropped.record(torch.cuda.current_stream(self.device))
        return staged.copied, dropped

    def exit(self, i: int) -> None:
        copied, dropped = self._uninstall(i)
        nxt = i + 1
        if self.prefetch and nxt in self.streamed and nxt not in self._staged and nxt not in self._live:
            self._wait_for_dropped()
            self._staged[nxt] = self._stage(nxt, asynchronous=True)
        if copied is not None:
            copied.synchronize()  # after the next copy is queued, so the copy engine never waits on the host
        if dropped is not None:
            self._dropped = dropped
        self.max_staged = max(self.max_staged, len(self._live) + len(self._staged))

    @contextmanager
    def around(self, i: int):
        self.enter(i)
        try:
            yield
        finally:
            self.exit(i)

    def _restore_all(self) -> None:
        for i in list(self._live):
            copied, _ = self._uninstall(i)
            if copied is not None:
                copied.synchronize()
        self._drop_staged()
        self._dropped = None

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
