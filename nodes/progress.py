"""Step callbacks for model loops: a progress bar plus ComfyUI's interruption check."""
from __future__ import annotations

from typing import Callable

from ..compat import comfy_utils, model_management


def step_callback(total: int, preview: Callable[[int], None] | None = None) -> Callable[[int, int], None]:
    """``callback(step, total)`` for ``models/`` samplers.

    Raises ComfyUI's ``InterruptProcessingException`` between steps when the user cancels, so a sampler
    stops at a step boundary and nothing half-written is returned. It is an ``Exception`` in ComfyUI:
    no broad ``except`` may sit between a sampler and the node.
    """
    bar = comfy_utils.ProgressBar(total)

    def callback(step: int, total_steps: int) -> None:
        model_management.throw_exception_if_processing_interrupted()
        bar.update_absolute(step, total_steps)
        if preview is not None:
            preview(step)

    model_management.throw_exception_if_processing_interrupted()
    return callback
