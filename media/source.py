"""Open media from a path or a file-like object, turning FFmpeg failures into MediaError."""
from __future__ import annotations

import io
import os
from contextlib import contextmanager
from typing import Iterator, Union

import av

from .errors import MediaError

Source = Union[str, os.PathLike, io.IOBase]


def source_name(source: Source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.path.basename(os.fspath(source))
    return getattr(source, "name", None) or "<in-memory media>"


@contextmanager
def open_input(source: Source) -> Iterator[av.container.InputContainer]:
    """An input container; a file-like source is rewound so it can be opened repeatedly."""
    name = source_name(source)
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise MediaError(f"file not found: {name}")
        if os.path.getsize(path) == 0:
            raise MediaError(f"{name} is empty (0 bytes)")
    elif hasattr(source, "seek"):
        source.seek(0)
    try:
        container = av.open(source if not isinstance(source, os.PathLike) else os.fspath(source), "r")
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"{name} is not a readable media file ({exc})") from exc
    try:
        yield container
    finally:
        container.close()


def origin_seconds(container) -> float:
    """Time zero of a file: the earliest stream start, so audio and video share one clock."""
    start = container.start_time
    return 0.0 if start is None else start / av.time_base


def decoder_of(stream, name: str):
    """The stream's codec context, or MediaError when FFmpeg has no decoder for it (an unknown wav format tag,
    0 bits per sample, a damaged header) instead of an AttributeError later."""
    context = stream.codec_context
    if context is None:
        tag = getattr(stream, "codec_tag", "") or getattr(getattr(stream, "codec", None), "name", "") or "unknown"
        raise MediaError(f"{name}: its {stream.type} stream (codec {tag!r}) cannot be decoded; "
                         "re-encode it to a common format (wav PCM, flac, mp4/H.264)")
    return context
