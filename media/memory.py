"""Memory a decode or a model build will need, checked before anything is allocated.

``available_bytes`` is what this process may still take: free RAM, and the room left under an
address-space limit (``ulimit -v``) when one is set. ``require`` refuses with the estimate in words.
"""
from __future__ import annotations

import os

from .errors import MediaError

# Headroom for everything else the process holds while the new buffers exist (decoders, copies).
SAFETY = 0.8


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


def _free_ram() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _address_space_left() -> int | None:
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft == resource.RLIM_INFINITY:
            return None
        with open("/proc/self/statm") as f:
            used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        return max(0, soft - used)
    except (ImportError, OSError, ValueError, AttributeError):
        return None


def available_bytes() -> int | None:
    """Bytes this process can still allocate, or None when it cannot be told."""
    limits = [v for v in (_free_ram(), _address_space_left()) if v is not None]
    return min(limits) if limits else None


def require(estimate: int, what: str) -> None:
    """MediaError when ``estimate`` bytes for ``what`` would not fit in memory."""
    available = available_bytes()
    if available is not None and estimate > available * SAFETY:
        raise MediaError(f"{what} needs about {format_bytes(estimate)} of memory, but only "
                         f"{format_bytes(available)} is available; use a shorter window, fewer frames or a "
                         "smaller size")
