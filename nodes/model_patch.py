"""Model handles passed between nodes: one object that knows how to put a module on the GPU.

Inside ComfyUI the module is wrapped in ``comfy.model_patcher.ModelPatcher`` and loaded with
``load_models_gpu`` so it shares VRAM accounting with every other model in the graph; headless,
the :class:`Placement` moves it directly. Models that place themselves piece by piece (block swap,
MTV's streamed audio projectors) are *self-placing*: a whole-module manager would load every block
at once, so the handle calls their own placement in both environments instead.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Protocol, runtime_checkable

import torch

from ..compat import IN_COMFYUI, model_management
from ..models.common.device import Placement


@runtime_checkable
class Placer(Protocol):
    """A model's own placement: ``place`` before a node's work, ``release`` after it."""

    def place(self, device: torch.device) -> None: ...

    def release(self, offload: torch.device) -> None: ...


class _PlaceMethod:
    """``self_placing=True`` without a placer: the module's own ``place(device)`` both ways."""

    def __init__(self, module: torch.nn.Module):
        if not callable(getattr(module, "place", None)):
            raise TypeError(f"self_placing=True needs a placer or a module with place(device); "
                            f"{type(module).__name__} has none")
        self.module = module

    def place(self, device: torch.device) -> None:
        self.module.place(device)

    def release(self, offload: torch.device) -> None:
        self.module.place(offload)


class _Container(torch.nn.Module):
    """What ComfyUI's patcher manages. The patcher sets attributes such as ``device`` on its model, and
    transformers/diffusers models expose ``device`` as a read-only property, so they ride inside this
    plain module (found by running the examples in a real ComfyUI)."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner


class ModelHandle:
    """A module plus where it computes.

    ``offload_after_use``: None leaves the choice to the environment (ComfyUI's model manager keeps it
    until memory is needed; headless it goes back to ``placement.offload`` after each use); True
    releases it after every use in both (for big encoders used once per run, like umt5-xxl); False
    keeps it on its compute device between uses headless too.

    ``self_placing``: the model places itself (``placer``, or the module's ``place(device)``). It is
    never handed to ComfyUI's model manager; instead the manager is asked to free the placer's
    ``resident_bytes()`` before use. Self-placed weights are invisible to that manager, so they are
    released after every use unless headless ``offload_after_use=False`` keeps them.
    """

    def __init__(self, module: torch.nn.Module, placement: Placement, *, info: dict[str, Any] | None = None,
                 offload_after_use: bool | None = None, self_placing: bool = False, placer: Placer | None = None):
        self.module = module.eval().requires_grad_(False)
        self.placement = placement
        self.info = dict(info or {})
        self.offload_after_use = offload_after_use
        self.placer: Placer | None = placer if placer is not None else (_PlaceMethod(module) if self_placing else None)
        self._patcher = None
        if IN_COMFYUI and self.placer is None:
            import comfy.model_patcher  # type: ignore

            self._patcher = comfy.model_patcher.ModelPatcher(
                _Container(self.module), load_device=placement.device,
                offload_device=model_management.unet_offload_device(),
            )

    @property
    def device(self) -> torch.device:
        return self.placement.device

    @property
    def dtype(self) -> torch.dtype:
        return self.placement.dtype

    @property
    def self_placing(self) -> bool:
        return self.placer is not None

    @contextmanager
    def use(self) -> Iterator[torch.nn.Module]:
        """The module on its compute device for the duration of a node's work."""
        if self.placer is not None:
            with self._self_placed() as module:
                yield module
            return
        if self._patcher is not None:
            # Whole or not at all: a partial (lowvram) load moves only the modules that fit and leaves
            # the rest to comfy ops' weight casting, which plain torch modules lack, and it never moves
            # modules holding only buffers (fp8 layers without bias); either would mix devices.
            model_management.load_models_gpu([self._patcher], force_full_load=True)
            try:
                yield self._patcher.model.inner
            finally:
                if self.offload_after_use:
                    self._release_from_comfy()
            return
        self.placement.load(self.module)
        try:
            yield self.module
        finally:
            keep = self.offload_after_use is False or self.placement.offload == self.placement.device
            if not keep:
                self.placement.unload(self.module)

    @contextmanager
    def _self_placed(self) -> Iterator[torch.nn.Module]:
        need = getattr(self.placer, "resident_bytes", None)
        free = getattr(model_management, "free_memory", None)
        if IN_COMFYUI and callable(need) and callable(free):
            free(need(), self.placement.device)  # make room the way the model manager would for itself
        self.placer.place(self.placement.device)
        try:
            yield self.module
        finally:
            if IN_COMFYUI or self.offload_after_use is not False:
                self.placer.release(self.placement.offload)
                if self.placement.device.type == "cuda":
                    model_management.soft_empty_cache()

    def _release_from_comfy(self) -> None:
        # The model manager's own unload path, for this one model (as its free_memory does under pressure).
        loaded = getattr(model_management, "current_loaded_models", [])
        for i in range(len(loaded) - 1, -1, -1):
            if getattr(loaded[i], "model", None) is self._patcher:
                loaded.pop(i).model_unload()
        model_management.soft_empty_cache()


@dataclass
class HandledEncoder:
    """A text encoder (tokenizer + network) whose network ``handle`` places while it encodes."""

    encoder: Any
    handle: ModelHandle
