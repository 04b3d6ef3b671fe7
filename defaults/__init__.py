"""The pack's trained tiny defaults: where they live and how ComfyUI finds them.

``defaults/<model folder>/soundstage-tiny/<system>/<file>.safetensors``: each first-level folder is named
after the ComfyUI model folder its loaders read (``soundstage_mmaudio``, ``clip_vision`` ...), and is
registered as an extra search path of that folder, so the files are listed as
``soundstage-tiny/<system>/<file>`` beside the user's own checkpoints and are never copied into the
user's models folder. Model cards are in ``defaults/cards/<system>.md``. Standard library only: every
layer may import this module.
"""
from __future__ import annotations

import os
from pathlib import Path

DEFAULTS_DIR = Path(__file__).resolve().parent
TINY = "soundstage-tiny"  # the folder (and so the name prefix) the loaders list the defaults under
# ComfyUI model folders that can hold defaults; a folder is registered only when it exists here.
MODEL_FOLDERS = ("soundstage_mmaudio", "soundstage_dualdub", "soundstage_ovi", "soundstage_ltx2", "soundstage_mtv",
                 "clip_vision", "text_encoders", "vae", "loras", "audio_encoders")


def search_paths(root: Path | None = None) -> dict[str, str]:
    """Model folder name -> absolute path of its defaults folder, for the folders that exist."""
    root = DEFAULTS_DIR if root is None else Path(root)
    return {name: str(root / name) for name in MODEL_FOLDERS if (root / name / TINY).is_dir()}


def is_default(name: str) -> bool:
    return name.replace(os.sep, "/").startswith(TINY + "/")


def defaults_first(names: list[str]) -> list[str]:
    """A loader's choices with the tiny defaults first (each group keeps ComfyUI's sorted order)."""
    return [n for n in names if is_default(n)] + [n for n in names if not is_default(n)]


def file_path(folder: str, system: str, filename: str, root: Path | None = None) -> Path:
    """Where ``train-defaults`` writes a default and the loaders find it."""
    return (DEFAULTS_DIR if root is None else Path(root)) / folder / TINY / system / filename


def card_path(system: str, root: Path | None = None) -> Path:
    return (DEFAULTS_DIR if root is None else Path(root)) / "cards" / f"{system}.md"
