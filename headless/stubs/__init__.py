"""The subset of ComfyUI's API that Soundstage nodes use, for running without ComfyUI.

Names match ``comfy_api.latest`` (``io``, ``ui``, ``ComfyExtension``, ``Input``, ``InputImpl``,
``Types``), ``folder_paths``, ``comfy.utils`` (as ``comfy_utils``) and ``comfy.model_management``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

from . import _io as io
from . import _ui as ui
from . import comfy_utils, folder_paths, model_management
from ._video import (
    AudioInput, ImageInput, LatentInput, MaskInput, VideoCodec, VideoComponents, VideoContainer,
    VideoFromComponents, VideoFromFile, VideoInput,
)


class ComfyExtension(ABC):
    async def on_load(self) -> None:
        """Called once when the extension is loaded."""

    @abstractmethod
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        """The node classes this extension provides."""


class Input:
    Image = ImageInput
    Audio = AudioInput
    Mask = MaskInput
    Latent = LatentInput
    Video = VideoInput


class InputImpl:
    VideoFromFile = VideoFromFile
    VideoFromComponents = VideoFromComponents


class Types:
    VideoCodec = VideoCodec
    VideoContainer = VideoContainer
    VideoComponents = VideoComponents


IO = io
UI = ui

__all__ = [
    "io", "ui", "IO", "UI", "ComfyExtension", "Input", "InputImpl", "Types",
    "folder_paths", "comfy_utils", "model_management",
]
