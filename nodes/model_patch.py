"""Model handles passed between nodes: one object that knows how to put a module on the GPU.

Inside ComfyUI the module is wrapped in ``comfy.model_patcher.ModelPatcher`` and loaded with
``load_models_gpu`` so it shares VRAM accounting with every other model in the graph; headless,
the :class:`Placement` moves it directly.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch

from ..compat import IN_COMFYUI, model_management
from ..models.common.device import Placement


class ModelHandle:
    def __init__(self, module: torch.nn.Module, placement: Placement, *, info: dict[str, Any] | None = None):
        self.module = module.eval().requires_grad_(False)
        self.placement = placement
        self.info = dict(info or {})
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
            yield self._patcher.model
            return
        self.placement.load(self.module)
        try:
            yield self.module
        finally:
            if self.placement.offload != self.placement.device:
                self.placement.unload(self.module)
