"""File names from a workflow resolve only inside one folder (no ``../`` escape, no absolute paths)."""
from __future__ import annotations

import os
import stat

from .errors import MediaError


def resolve_inside(folder: str, name: str) -> str:
    """Full path of ``name`` within ``folder`` once links are resolved; MediaError for escapes, absolute
    paths, control characters, missing files and anything that is not a regular file (devices, FIFOs)."""
    if not isinstance(name, str) or not name.strip():
        raise MediaError("no file chosen")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise MediaError(f"{name!r} contains a control character (NUL, newline ...)")
    name = name.strip()
    if name.endswith(" [input]"):
        name = name[: -len(" [input]")]
    if os.path.isabs(name) or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise MediaError(f"absolute paths are not allowed ({name!r}); put the file in the input folder")
    root = os.path.realpath(folder)
    path = os.path.realpath(os.path.join(root, name))
    if os.path.commonpath((root, path)) != root:
        raise MediaError(f"{name!r} points outside the input folder")
    try:
        mode = os.stat(path).st_mode
    except OSError:
        raise MediaError(f"{name!r} not found in the input folder") from None
    if not stat.S_ISREG(mode):
        raise MediaError(f"{name!r} is not a regular file (a folder, device or FIFO); only files are read")
    return path
