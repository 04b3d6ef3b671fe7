"""Errors a workflow author can act on: every library failure re-raised as ValueError naming node and input."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from ..media.errors import MediaError
from ..models.common.checkpoint import CheckpointError

# The pack's own "bad input" errors: unusable checkpoints and unusable media.
LIBRARY_ERRORS: tuple[type[BaseException], ...] = (CheckpointError, MediaError)


def input_error(node: str, input_name: str | None, message: object) -> ValueError:
    """``ValueError("<node>: input '<input>': <message>")``; without an input, ``"<node>: <message>"``."""
    where = f"{node}: input '{input_name}'" if input_name else node
    return ValueError(f"{where}: {message}")


@contextmanager
def node_errors(node: str, input_name: str | None, *extra_exception_types: type[BaseException]) -> Iterator[None]:
    """Re-raise the pack's library errors (plus ``extra_exception_types``) as ValueError naming node and input.

    The original exception stays chained as ``__cause__``; anything else (interruptions, bugs) passes untouched.
    """
    try:
        yield
    except LIBRARY_ERRORS + tuple(extra_exception_types) as exc:
        raise input_error(node, input_name, exc) from exc
