"""Errors a workflow author can act on: every library failure re-raised as ValueError naming node and input."""
from __future__ import annotations

import contextvars
import functools
import os
import pickle
import zipfile
from contextlib import contextmanager
from typing import Iterator

from ..compat import model_management
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


# ----------------------------------------------------------------------------- model files
# Which model input a loader resolved last (set by model_folders.resolve_model while the node runs).
_RESOLVED: contextvars.ContextVar[tuple[str, str, str] | None] = contextvars.ContextVar("soundstage_model_input",
                                                                                          default=None)
_LOAD_PHRASES = ("state_dict", "size mismatch", "PytorchStreamReader", "Error(s) in loading", "safetensors",
                 "deserializ", "unpickl", "weights_only")


def note_model_input(node: str, input_name: str, path: str) -> None:
    _RESOLVED.set((node, input_name, path))


def _file_error(exc: BaseException) -> bool:
    """Exceptions that, once a model file was chosen, mean the file is not one this node can load."""
    if isinstance(exc, ValueError) and "input '" in str(exc):
        return False  # already names its node and input
    if isinstance(exc, (CheckpointError, pickle.UnpicklingError, KeyError, IndexError, EOFError, zipfile.BadZipFile,
                        OSError, ValueError)):
        return True
    name = type(exc).__name__
    if name in ("SafetensorError", "HeaderTooLarge", "HeaderTooSmall", "InvalidHeaderDeserialization"):
        return True
    return isinstance(exc, RuntimeError) and any(p in str(exc) for p in _LOAD_PHRASES)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"it lacks the entry {exc.args[0]!r} this model needs" if exc.args else "an entry this model needs is missing"
    text = str(exc).strip() or type(exc).__name__
    return text if isinstance(exc, CheckpointError) else f"{text} ({type(exc).__name__})"


def guard_model_inputs(node_class: type) -> type:
    """Wrap ``execute`` so that a failure while loading a chosen model file is reported as
    ``<node>: input '<input>': '<file>' cannot be loaded: <why>`` instead of a raw KeyError,
    SafetensorError or UnpicklingError from inside the loader. Failures before any model file was
    resolved, interruptions and errors that already name an input pass through untouched."""
    execute = node_class.__dict__.get("execute")
    function = getattr(execute, "__func__", None)
    if function is None or getattr(function, "_guards_model_inputs", False):
        return node_class

    @functools.wraps(function)
    def guarded(cls, *args, **kwargs):
        token = _RESOLVED.set(None)
        try:
            return function(cls, *args, **kwargs)
        except model_management.InterruptProcessingException:
            raise
        except Exception as exc:
            resolved = _RESOLVED.get()
            if resolved is None or not _file_error(exc):
                raise
            node, input_name, path = resolved
            raise input_error(node, input_name, f"'{os.path.basename(path)}' cannot be loaded: {_describe(exc)}") from exc
        finally:
            _RESOLVED.reset(token)

    guarded._guards_model_inputs = True
    node_class.execute = classmethod(guarded)
    return node_class
