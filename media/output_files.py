"""Output files that never replace anything and never leave their folder.

Every writer of the pack (and of the headless core stand-ins) goes through here:

1. ``check_prefix`` refuses a ``filename_prefix`` that is empty, ends in a folder separator, is
   absolute, climbs with ``..`` or holds a control character (FFmpeg cuts a path at a NUL, so
   ``"victim.flac\\0"`` would otherwise write ``victim.flac``);
2. ``inside`` resolves links before checking that a folder is within its root (a symlinked
   sub-folder must not carry a save out of the output folder);
3. ``staged`` gives a hidden temporary name in the target folder and removes it if writing fails or
   is interrupted, so no truncated file ever carries an output name;
4. ``publish`` gives the finished file its name with a hard link, which fails instead of replacing
   an existing file: the counter moves on until a free name is found, so two runs writing the same
   prefix at once get two files.
"""
from __future__ import annotations

import errno
import os
import secrets
from contextlib import contextmanager
from typing import Callable, Iterator

from .errors import MediaError

MAX_COUNTER = 10 ** 6


def check_prefix(prefix) -> str:
    """``prefix`` when it names files inside a folder, else MediaError saying what is wrong."""
    if not isinstance(prefix, str):
        raise MediaError(f"expected text, got {type(prefix).__name__}")
    if not prefix.strip():
        raise MediaError("is empty; give a file name prefix such as 'audio/take'")
    bad = next((c for c in prefix if ord(c) < 0x20 or ord(c) == 0x7F), None)
    if bad is not None:
        raise MediaError(f"contains the control character {bad!r}; use letters, digits, '-', '_' and '/'")
    if prefix.endswith(("/", "\\")):
        raise MediaError(f"{prefix!r} ends with a folder separator; add a file name after it")
    if os.path.isabs(prefix) or prefix.startswith(("/", "\\")) or (len(prefix) > 1 and prefix[1] == ":"):
        raise MediaError(f"{prefix!r} is an absolute path; prefixes are relative to the output folder")
    parts = prefix.replace("\\", "/").split("/")
    if ".." in parts:
        raise MediaError(f"{prefix!r}: '..' would lead outside the output folder; use plain folder names")
    if any(p in (".", "") for p in parts):
        raise MediaError(f"{prefix!r} has an empty or '.' path component; use plain folder names")
    return prefix


def inside(root: str, folder: str, create: bool = False) -> str:
    """Real path of ``folder`` after checking that it lies within ``root`` once links are resolved."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(root, folder))
    if os.path.commonpath((real_root, real)) != real_root:
        raise MediaError(f"{folder!r} leaves the folder (through '..' or a link)")
    if create:
        os.makedirs(real, exist_ok=True)
        if os.path.commonpath((real_root, os.path.realpath(real))) != real_root:  # raced with a new link
            raise MediaError(f"{folder!r} leaves the folder (through a link)")
    return real


def prefix_folder(prefix: str) -> str:
    """The sub-folder part of a checked prefix."""
    return os.path.dirname(os.path.normpath(prefix))


@contextmanager
def staged(folder: str, ext: str) -> Iterator[str]:
    """A temporary path in ``folder`` ending in ``.ext``; removed unless ``publish`` took it."""
    path = os.path.join(folder, f".soundstage-{secrets.token_hex(6)}.partial.{ext}")
    try:
        yield path
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def publish(temp: str, folder: str, name_for: Callable[[int], str], counter: int) -> str:
    """Give the finished ``temp`` the first free name ``name_for(counter)``, ``name_for(counter + 1)``, ...;
    returns the file name. An existing file is never replaced."""
    for number in range(max(1, counter), MAX_COUNTER):
        name = name_for(number)
        target = os.path.join(folder, name)
        try:
            os.link(temp, target)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            if not _reserve(target):  # a file system without hard links: reserve the name, then move
                continue
            os.replace(temp, target)
            return name
        os.unlink(temp)
        return name
    raise MediaError(f"no free file name in {folder!r} after {MAX_COUNTER} tries")


def _reserve(target: str) -> bool:
    try:
        os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        return False
    return True


def counted_name(filename: str, ext: str) -> Callable[[int], str]:
    """ComfyUI's ``<prefix>_<counter:05>_.<ext>``."""
    return lambda number: f"{filename}_{number:05}_.{ext}"
