"""Checkpoint files: reading them safely, renaming keys, and loading strictly.

Every loader in the pack goes through here, so a wrong file always fails the same way: with
the full list of missing, unexpected and mis-shaped keys, never a silent partial load.
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence

import torch
from torch import nn

WEIGHT_EXTENSIONS = (".safetensors", ".pt", ".pth", ".ckpt", ".bin")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used for the model asked for."""


def load_file(
    path: str | Path, device: str | torch.device = "cpu", *, allowed_globals: Sequence[type] = ()
) -> dict[str, torch.Tensor]:
    """Read a whole checkpoint: safetensors, or a pickle through ``weights_only=True`` only.

    ``allowed_globals`` admits plain-data classes some trainers pickle beside the tensors
    (DeepSpeed/SAT store an ``argparse.Namespace``); nothing executable is ever unpickled.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file as st_load

        try:
            return _real_only(st_load(str(path), device=str(device)), path)
        except CheckpointError:
            raise
        except Exception as exc:  # safetensors raises its own error types
            raise CheckpointError(f"{path.name}: not a readable safetensors file ({exc})") from exc
    try:
        with torch.serialization.safe_globals(list(allowed_globals)):
            obj = torch.load(str(path), map_location=device, weights_only=True, mmap=True)
    except Exception as exc:
        raise CheckpointError(
            f"{path.name}: cannot be read with torch.load(weights_only=True) ({exc}). "
            "Only tensor checkpoints are accepted; convert other files to safetensors."
        ) from exc
    return _real_only(flatten_tensors(obj), path)


def _real_only(sd: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """No model of the pack stores complex weights: a complex tensor would lose its imaginary part on the
    way into a real parameter (or a conversion before it), so such a file is refused whole."""
    bad = [k for k, v in sd.items() if v.is_complex()]
    if bad:
        raise CheckpointError(f"{path.name}: holds complex tensors ({', '.join(bad[:5])}"
                              f"{' ...' if len(bad) > 5 else ''}); the models here have real weights only")
    return sd


def safetensors_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata in a safetensors header (configs are often stored there)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def flatten_tensors(obj, prefix: str = "") -> dict[str, torch.Tensor]:
    """Nested dicts of tensors (Lightning ``state_dict``, DeepSpeed ``module``...) -> flat dotted keys.

    Non-tensor leaves (step counters, hyper-parameters) are dropped.
    """
    out: dict[str, torch.Tensor] = {}
    if isinstance(obj, torch.Tensor):
        out[prefix.rstrip(".")] = obj
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            out.update(flatten_tensors(v, f"{prefix}{k}."))
    return out


def select(sd: Mapping[str, torch.Tensor], prefix: str, *, strip: bool = True) -> dict[str, torch.Tensor]:
    """The entries under ``prefix`` (e.g. ``"state_dict."``), with the prefix removed by default."""
    n = len(prefix) if strip else 0
    return {k[n:]: v for k, v in sd.items() if k.startswith(prefix)}


def drop_prefixes(sd: Mapping[str, torch.Tensor], prefixes: Iterable[str]) -> dict[str, torch.Tensor]:
    prefixes = tuple(prefixes)
    return {k: v for k, v in sd.items() if not k.startswith(prefixes)}


def rename_keys(
    sd: Mapping[str, torch.Tensor], table: Sequence[tuple[str, str]]
) -> dict[str, torch.Tensor]:
    """Apply ``(regex, replacement)`` rules in order to every key; one table per checkpoint format."""
    compiled = [(re.compile(p), r) for p, r in table]
    out = {}
    for k, v in sd.items():
        for pat, rep in compiled:
            k = pat.sub(rep, k)
        out[k] = v
    return out


def fold_weight_norm(sd: Mapping[str, torch.Tensor], *, dim: int = 0) -> dict[str, torch.Tensor]:
    """Replace ``*.weight_g`` / ``*.weight_v`` pairs by ``*.weight = g * v / ||v||``.

    Also accepts torch's parametrization spelling (``parametrizations.weight.original0/1``).
    The norm is taken over every dim except ``dim``, as ``torch.nn.utils.weight_norm`` does.
    """
    out: dict[str, torch.Tensor] = {}
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for k, v in sd.items():
        name = k.rsplit(".", 1)[-1]
        if name in ("weight_g", "weight_v"):
            pairs.setdefault(k[: -len("weight_g")], {})[name[-1]] = v
        elif "parametrizations.weight.original" in k:
            base, which = k.split("parametrizations.weight.original")
            pairs.setdefault(base, {})["g" if which == "0" else "v"] = v
        else:
            out[k] = v
    for base, gv in pairs.items():
        if set(gv) != {"g", "v"}:
            raise CheckpointError(f"weight-norm pair incomplete for {base + 'weight'!r}: has {sorted(gv)}")
        g, v = gv["g"], gv["v"]
        dims = [d for d in range(v.dim()) if d != dim]
        norm = v.float().norm(dim=dims, keepdim=True)
        out[base + "weight"] = (g.float() * v.float() / norm).to(v.dtype)
    return out


@dataclass
class LoadReport:
    """What a strict load found. ``ok`` only when nothing is missing, unexpected or mis-shaped."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def describe(self, limit: int | None = None) -> str:
        parts = []
        for title, items in (("missing", self.missing), ("unexpected", self.unexpected)):
            if items:
                shown = items if limit is None else items[:limit]
                more = "" if len(shown) == len(items) else f" ... (+{len(items) - len(shown)} more)"
                parts.append(f"{len(items)} {title} key(s): {', '.join(shown)}{more}")
        if self.mismatched:
            shown = self.mismatched if limit is None else self.mismatched[:limit]
            parts.append(
                f"{len(self.mismatched)} shape mismatch(es): "
                + ", ".join(f"{k} file {tuple(a)} vs model {tuple(b)}" for k, a, b in shown)
            )
        return "; ".join(parts) or "all keys matched"

    def raise_if_failed(self, context: str) -> None:
        if not self.ok:
            raise CheckpointError(f"{context}: {self.describe()}")


def compare_keys(
    expected: Mapping[str, tuple | torch.Size], given: Mapping[str, tuple | torch.Size]
) -> LoadReport:
    """Key/shape comparison alone (works for meta tensors and manifests)."""
    report = LoadReport()
    report.missing = sorted(k for k in expected if k not in given)
    report.unexpected = sorted(k for k in given if k not in expected)
    report.mismatched = [
        (k, tuple(given[k]), tuple(expected[k]))
        for k in sorted(expected)
        if k in given and tuple(given[k]) != tuple(expected[k])
    ]
    return report


def model_shapes(module: nn.Module) -> dict[str, tuple]:
    """Parameter and persistent-buffer shapes, as ``state_dict`` names them."""
    return {k: tuple(v.shape) for k, v in module.state_dict(keep_vars=True).items()}


def load_strict(
    module: nn.Module,
    sd: Mapping[str, torch.Tensor],
    *,
    context: str,
    dtype: torch.dtype | None = None,
    assign: bool | None = None,
) -> LoadReport:
    """Load ``sd`` into ``module`` after checking every key and shape; raise naming all problems.

    A module built on the ``meta`` device is loaded with ``assign=True``, so the file's tensors
    become the parameters and a large model is never held twice.
    """
    report = compare_keys(model_shapes(module), {k: tuple(v.shape) for k, v in sd.items()})
    report.raise_if_failed(context)
    targets = module.state_dict()
    complex_into_real = sorted(k for k, v in sd.items()
                               if v.is_complex() and k in targets and not targets[k].is_complex())
    if complex_into_real:  # copying would silently drop the imaginary part
        raise CheckpointError(f"{context}: complex tensors for real parameters: {', '.join(complex_into_real[:5])}"
                              + (f" and {len(complex_into_real) - 5} more" if len(complex_into_real) > 5 else ""))
    if dtype is not None:
        sd = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in sd.items()}
    if assign is None:
        assign = any(p.is_meta for p in module.parameters())
    module.load_state_dict(dict(sd), strict=True, assign=assign)
    return report


@contextmanager
def meta_device() -> Iterator[None]:
    """Build modules without allocating their weights (fill them with :func:`load_strict`)."""
    with torch.device("meta"):
        yield


def build_and_load(
    factory: Callable[[], nn.Module],
    sd: Mapping[str, torch.Tensor],
    *,
    context: str,
    dtype: torch.dtype | None = None,
) -> nn.Module:
    """Construct on ``meta``, then adopt the checkpoint tensors: peak memory is one copy of the weights."""
    with meta_device():
        module = factory()
    load_strict(module, sd, context=context, dtype=dtype, assign=True)
    # Non-persistent buffers (RoPE tables, filters) were created on meta and are not in the file.
    for mod in module.modules():
        for name, buf in list(mod._buffers.items()):
            if buf is not None and buf.is_meta:
                raise CheckpointError(
                    f"{context}: buffer {name!r} of {type(mod).__name__} is not in the file and must be "
                    "recomputed after loading (override reset_non_persistent_buffers)."
                )
    return module
