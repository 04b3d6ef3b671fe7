"""What one headless run owns: its folders, its device and its interrupt flag.

A ``Runner`` makes one ``RunState`` and installs it (a context variable) while it validates or runs,
so two runners in two threads never see each other's folders or interrupts. Outside any run the
module-level settings apply, as in ComfyUI (one process, one queue).
"""
from __future__ import annotations

import contextvars
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator


@dataclass
class RunState:
    input_dir: str | None = None
    output_dir: str | None = None
    temp_dir: str | None = None
    models_dir: str | None = None
    device: object = None  # torch.device or None for the automatic choice
    interrupted: threading.Event = field(default_factory=threading.Event)


CURRENT: contextvars.ContextVar[RunState | None] = contextvars.ContextVar("soundstage_run", default=None)


def current() -> RunState | None:
    return CURRENT.get()


@contextmanager
def installed(state: RunState) -> Iterator[RunState]:
    token = CURRENT.set(state)
    try:
        yield state
    finally:
        CURRENT.reset(token)
