"""Model handles passed between nodes: one object that knows how to put a module on the GPU.

Inside ComfyUI the module is wrapped in ``comfy.model_patcher.ModelPatcher`` and loaded with
``load_models_gpu`` so it shares VRAM accounting with every other model in the graph; headless,
the :class:`Placement` moves it directly.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from ..compat import IN_COMFYUI, model_management
from ..models.common.device import Placement


class ModelHandle:
    """A module plus where it computes.

    ``offload_after_use``: None leaves the choice to the environment (ComfyUI's model manager keeps it
    until memory is needed; headless it goes back to ``placement.offload`` after each use); True
    releases it after every use in both (for big encoders used once per run, like umt5-xxl); False
    keeps it on its compute device between uses headless too.
    """

    def __init__(self, module: torch.nn.Module, placement: Placement, *, info: dict[str, Any] | None = None,
                 offload_after_use: bool | None = None):
        self.module = module.eval().requires_grad_(False)
        self.placement = placement
        self.info = dict(info or {})
        self.offload_after_use = offload_after_use
        self._patcher = None
        if IN_COMFYUI:
            import comfy.model_patcher  # type: ignore

            self._patcher = comfy.model_patcher.ModelPatcher(
                self.module, load_device=placement.device, offload_device=model_management.unet_offload_device()
            )

    @property
    def device(self) -> torch.device:
        return self.placement.device

    @property
    def dtype(self) -> torch.dtype:
        return self.placement.dtype

    @contextmanager
    def use(self) -> Iterator[torch.nn.Module]:
        """The module on its compute device for the duration of a node's work."""
        if self._patcher is not None:
            model_management.load_models_gpu([self._patcher])
            try:
                yield self._patcher.model
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
