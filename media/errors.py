"""The one error type of the media library; nodes add which node and input it concerns."""
from __future__ import annotations


class MediaError(ValueError):
    """Bad media or parameters, explained in words a workflow author can act on."""
