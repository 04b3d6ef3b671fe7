"""Headless stand-in for ``comfy.model_management``: device choice and the interruption flag."""
from __future__ import annotations

import os
import threading

import torch

from . import _run


class InterruptProcessingException(Exception):
    """Raised to stop a run. An ``Exception`` as in ComfyUI's own comfy/model_management.py, so a node's
    ``except Exception`` swallows it here exactly as it would in ComfyUI, and tests can catch that."""


_interrupt_lock = threading.RLock()
_interrupt_processing = False
_device_override: torch.device | None = None


def set_torch_device(device: str | torch.device | None) -> None:
    """Headless only: the runner's ``device=`` choice (None restores automatic choice)."""
    global _device_override
    _device_override = torch.device(device) if device is not None else None


def get_torch_device() -> torch.device:
    state = _run.current()
    if state is not None and state.device is not None:
        return torch.device(state.device)
    if _device_override is not None:
        return _device_override
    if os.environ.get("SOUNDSTAGE_DEVICE"):
        return torch.device(os.environ["SOUNDSTAGE_DEVICE"])
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def intermediate_device() -> torch.device:
    return torch.device("cpu")


def unet_offload_device() -> torch.device:
    return torch.device("cpu")


def text_encoder_device() -> torch.device:
    return get_torch_device()


def text_encoder_offload_device() -> torch.device:
    return torch.device("cpu")


def vae_device() -> torch.device:
    return get_torch_device()


def vae_offload_device() -> torch.device:
    return torch.device("cpu")


def cpu_mode() -> bool:
    return get_torch_device().type == "cpu"


def get_free_memory(dev: torch.device | None = None) -> int:
    dev = dev or get_torch_device()
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        return int(free)
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        return 16 * 1024 ** 3


def soft_empty_cache(force: bool = False) -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.ipc_collect()


def interrupt_current_processing(value: bool = True) -> None:
    """Inside a headless run: that run's flag only; outside: the process-wide flag, as in ComfyUI."""
    global _interrupt_processing
    state = _run.current()
    if state is not None:
        state.interrupted.set() if value else state.interrupted.clear()
        return
    with _interrupt_lock:
        _interrupt_processing = value


def processing_interrupted() -> bool:
    state = _run.current()
    if state is not None:
        return state.interrupted.is_set()
    with _interrupt_lock:
        return _interrupt_processing


def throw_exception_if_processing_interrupted() -> None:
    global _interrupt_processing
    state = _run.current()
    if state is not None:
        if state.interrupted.is_set():
            state.interrupted.clear()
            raise InterruptProcessingException()
        return
    with _interrupt_lock:
        if _interrupt_processing:
            _interrupt_processing = False
            raise InterruptProcessingException()


def load_models_gpu(models, memory_required: int = 0, force_patch_weights: bool = False,
                    minimum_memory_required=None, force_full_load: bool = False) -> None:
    """Headless there is no ModelPatcher registry to load into; modules stay where the pack put them."""


def unload_all_models() -> None:
    soft_empty_cache()
