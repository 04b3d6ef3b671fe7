"""The one place that decides between real ComfyUI modules and the headless stubs.

Nodes import ``io``, ``ui``, ``ComfyExtension``, ``Input``, ``InputImpl``, ``Types``,
``folder_paths``, ``comfy_utils`` and ``model_management`` from here. Inside ComfyUI the real
modules are used and the stubs are never imported.
"""
from __future__ import annotations

try:
    from comfy_api.latest import ComfyExtension, Input, InputImpl, Types, io, ui  # type: ignore
    import folder_paths  # type: ignore
    import comfy.utils as comfy_utils  # type: ignore
    import comfy.model_management as model_management  # type: ignore

    IN_COMFYUI = True
except ImportError:
    from .headless.stubs import (  # noqa: F401
        ComfyExtension,
        Input,
        InputImpl,
        Types,
        comfy_utils,
        folder_paths,
        io,
        model_management,
        ui,
    )

    IN_COMFYUI = False

__all__ = [
    "ComfyExtension", "Input", "InputImpl", "Types", "io", "ui",
    "folder_paths", "comfy_utils", "model_management", "IN_COMFYUI",
]
