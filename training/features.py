"""Cached per-clip features, the data folder every ``train <system>`` reads: one safetensors file per clip and
``manifest.jsonl`` naming them (one JSON object per line, ``{"features": "00000.safetensors"}``), as MMAudio
trains from cached features rather than from media."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import torch


def add_train_arguments(p, *, model: str, config: str, steps: int, batch_size: int, lr: float,
                        weight_decay: float = 0.0) -> None:
    """The arguments every ``train <system>`` on cached features shares (data, output, start point, optimiser, EMA,
    precision, seed); ``model`` / ``config`` say what ``--init`` / ``--config`` take for that system."""
    p.add_argument("--data", required=True, help="folder with manifest.jsonl of cached per-clip features")
    p.add_argument("--out", required=True)
    p.add_argument("--init", help=f"{model} to start from")
    p.add_argument("--config", help=f"JSON file of a fresh model's {config}")
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--weight-decay", type=float, default=weight_decay)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--mixed-precision", default="no", choices=["no", "bf16", "fp16"])
    p.add_argument("--seed", type=int, default=0)


def write_features(folder: str | Path, clips: list[dict[str, torch.Tensor]], names: list[str] | None = None) -> Path:
    """Write ``clips`` (one dict of tensors each, stored as float32) and their manifest into ``folder``."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, feats in enumerate(clips):
        name = f"{names[i] if names else i:>05}.safetensors"
        save_file({k: v.detach().float().contiguous() for k, v in feats.items()}, str(folder / name))
        lines.append(json.dumps({"features": name}))
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def manifest_items(folder: str | Path, required: Sequence[str] = (), command: str = "train") -> list[dict[str, torch.Tensor]]:
    """Every clip the manifest names, each checked for the ``required`` tensors; errors name ``command``, the
    manifest and its line. A features file must sit inside ``folder`` (a manifest cannot reach elsewhere)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    manifest = folder / "manifest.jsonl"
    if not manifest.is_file():
        raise FileNotFoundError(f"{command}: {manifest} not found (one JSON line per clip naming its features file)")
    root = folder.resolve()
    items = []
    for n, line in enumerate(manifest.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            name = json.loads(line)["features"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{command}: {manifest} line {n} is not a JSON object with a 'features' file name") from exc
        path = (folder / str(name)).resolve()
        if not path.is_relative_to(root):
            raise ValueError(f"{command}: {manifest} line {n}: {name!r} is outside the data folder")
        if not path.is_file():
            raise FileNotFoundError(f"{command}: {manifest} line {n}: features file {name!r} not found")
        feats = load_file(str(path))
        missing = [k for k in required if k not in feats]
        if missing:
            raise ValueError(f"{command}: {manifest} line {n}: features lack {', '.join(missing)}")
        items.append(feats)
    if not items:
        raise ValueError(f"{command}: {manifest} lists no clips")
    return items


__all__ = ["add_train_arguments", "manifest_items", "write_features"]
