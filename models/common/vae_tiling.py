"""diffusers' tiled VAE decoding for one call: bounded decoder memory (the full-frame decode of a
49x480x720 CogVideoX or 121x704x704 Wan video alone outgrows a 24 GB card), blended tile seams."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from torch import nn


@contextmanager
def vae_tiling(vae: nn.Module, enabled: bool) -> Iterator[nn.Module]:
    """Tiling on (or off) inside the block; the VAE's own setting (and tile sizes) come back after."""
    before = bool(getattr(vae, "use_tiling", False))
    _set(vae, enabled)
    try:
        yield vae
    finally:
        _set(vae, before)


def _set(vae: nn.Module, enabled: bool) -> None:
    vae.enable_tiling() if enabled else vae.disable_tiling()  # without sizes: tuned tile sizes are kept
