"""File names from a workflow resolve only inside one folder (no ``../`` escape, no absolute paths)."""
from __future__ import annotations

import os

from .errors import MediaError


def resolve_inside(folder: str, name: str) -> str:
    """Full path of ``name`` within ``folder``; MediaError for escapes, absolute paths and missing files."""
    if not name or not str(name).strip():
        raise MediaError("no file chosen")
    name = str(name).strip()
    if name.endswith(" [input]"):
        name = name[: -len(" [input]")]
    if os.path.isabs(name) or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise MediaError(f"absolute paths are not allowed ({name!r}); put the file in the input folder")
    root = os.path.realpath(folder)
    path = os.path.realpath(os.path.join(root, name))
    if os.path.commonpath((root, path)) != root:
        raise MediaError(f"{name!r} points outside the input folder")
    if not os.path.isfile(path):
        raise MediaError(f"{name!r} not found in the input folder")
    return path
