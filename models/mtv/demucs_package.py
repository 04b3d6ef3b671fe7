"""Demucs model packages (``.th`` files) read as data, never as code.

``demucs.states.serialize_model`` pickles ``{'klass', 'args', 'kwargs', 'state', 'training_args'}``
where ``klass`` is the model class itself (MVSEP-CDX23's cinematic checkpoints, which MTV's
data_process/demix.py loads, are such packages of ``demucs.htdemucs.HTDemucs``). Here the pickle
goes through ``torch.load(weights_only=True)``: the class reference is admitted by name only and
becomes an inert marker, ``fractions.Fraction`` (a model ``segment``) is a plain number, and every
other global is refused, so nothing in the file can run.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import torch

from ..common.checkpoint import CheckpointError

HTDEMUCS_CLASS = "demucs.htdemucs.HTDemucs"


@dataclass(frozen=True)
class ClassReference:
    """What a package's ``klass`` unpickles to: the class's dotted name, not the class."""

    path: str


@dataclass(frozen=True)
class DemucsPackage:
    name: str
    kwargs: dict
    state: dict[str, torch.Tensor]

    @property
    def sources(self) -> list[str]:
        return list(self.kwargs["sources"])


def read_checkpoint(path: str | Path):
    """The unpickled object of a ``.th`` / ``.pt`` file, with only tensors, plain data and the
    HTDemucs class name admitted."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"separator file not found: {path}")
    allowed = [(ClassReference(HTDEMUCS_CLASS), HTDEMUCS_CLASS), Fraction]
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{path.name}: cannot be read as data with torch.load(weights_only=True): "
            f"{_refused_globals(path) or exc}. Only {HTDEMUCS_CLASS} packages "
            "(demucs.states.serialize_model) and plain state dicts are accepted."
        ) from exc


def _refused_globals(path: Path) -> str:
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:  # not a zip checkpoint: the torch error says enough
        return ""
    names = [n for n in names if n not in (HTDEMUCS_CLASS, "fractions.Fraction")]
    if not names:
        return ""
    return f"it references {', '.join(sorted(names))}, which are not admitted (unpickling them can run code)"


def is_package(obj) -> bool:
    return isinstance(obj, dict) and "klass" in obj and "state" in obj


def package_from(obj: dict, name: str) -> DemucsPackage:
    klass = obj["klass"]
    if klass != ClassReference(HTDEMUCS_CLASS):
        raise CheckpointError(f"{name}: a demucs package of {klass!r}; only {HTDEMUCS_CLASS} is supported")
    state = obj["state"]
    if not isinstance(state, dict) or state.get("__quantized"):
        raise CheckpointError(
            f"{name}: the weights are DiffQ-quantized (state['__quantized']); re-export the model "
            "unquantized (demucs.states.serialize_model(model, args, quantizer=None))"
        )
    kwargs = dict(obj.get("kwargs") or {})
    args = list(obj.get("args") or ())
    if len(args) > 1:
        raise CheckpointError(f"{name}: {len(args)} positional model arguments; HTDemucs takes only 'sources'")
    if args:
        kwargs["sources"] = args[0]
    if not kwargs.get("sources"):
        raise CheckpointError(f"{name}: the package names no 'sources'")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{name}: state entries {bad[:5]} are not tensors")
    return DemucsPackage(name=name, kwargs=kwargs, state=dict(state))
