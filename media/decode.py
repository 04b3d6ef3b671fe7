"""Streamed video decoding: seek to a start time, stop at the end of the asked window, and resample
the frame timeline to an exact rate (also for variable-frame-rate input).

Resampling is sample-and-hold on presentation times: output frame k at time start + k / fps shows
the source frame on screen at that instant (the latest frame whose timestamp is <= that time), as a
player would. Only the frames of the window (after resizing) are ever held.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable, Iterator

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

from .errors import MediaError
from .memory import require
from .resize import ResizePlan, plan_resize
from .source import Source, decoder_of, open_input, origin_seconds, source_name

TIME_EPS = 1e-4  # s; far below any frame interval, above float/time-base rounding of timestamps
MAX_FPS = 1000.0


@dataclass
class VideoInfo:
    width: int
    height: int
    fps: float  # average rate as stored; VFR files report their mean
    duration: float | None
    frame_count: int | None
    has_audio: bool
    audio_streams: int = 0


@dataclass
class DecodedVideo:
    frames: torch.Tensor  # IMAGE [N, H, W, 3] float32 0..1
    times: list[float] = field(default_factory=list)  # seconds from the window start
    fps: float = 0.0  # rate of the output timeline (source mean rate when not resampled)
    source_fps: float = 0.0


def probe_video(source: Source) -> VideoInfo:
    with open_input(source) as container:
        return _probe(container, source_name(source))


def _probe(container, name: str) -> VideoInfo:
    if not container.streams.video:
        raise MediaError(f"{name} has no video stream")
    stream = container.streams.video[0]
    decoder_of(stream, name)
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    duration = None
    if stream.duration is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    return VideoInfo(
        width=stream.codec_context.width, height=stream.codec_context.height,
        fps=float(rate) if rate else 0.0, duration=duration,
        frame_count=stream.frames or None, has_audio=bool(container.streams.audio),
        audio_streams=len(container.streams.audio),
    )


def _check_window(start: float, duration: float, max_frames: int, fps: float, stride: int) -> None:
    if start < 0:
        raise MediaError(f"start time must be >= 0 s, got {start}")
    if duration < 0:
        raise MediaError(f"max duration must be >= 0 s (0 = to the end), got {duration}")
    if max_frames < 0:
        raise MediaError(f"max frames must be >= 0 (0 = no limit), got {max_frames}")
    if fps < 0 or fps > MAX_FPS:
        raise MediaError(f"fps must be 0 (source rate) or in (0, {MAX_FPS}], got {fps}")
    if stride < 1:
        raise MediaError(f"stride must be >= 1, got {stride}")


def _source_frames(container, stream, start: float, origin: float) -> Iterator[tuple[float, float, av.VideoFrame]]:
    """(time from file origin, duration, frame) from the last frame at or before ``start`` onwards."""
    if start > 0:
        target = int((start + origin) / stream.time_base)
        try:
            container.seek(target, stream=stream, backward=True, any_frame=False)
        except av.error.FFmpegError:
            container.seek(0, stream=stream)
    rate = stream.average_rate or stream.guessed_rate
    nominal = float(1 / rate) if rate else 1 / 25
    last = None
    try:
        for frame in container.decode(stream):
            if frame.pts is None:
                t = (last + nominal) if last is not None else 0.0
            else:
                t = float(frame.pts * frame.time_base) - origin
            last = t
            dur = float(frame.duration * frame.time_base) if frame.duration else nominal
            yield t, dur, frame
    except av.error.FFmpegError as exc:
        if last is None:
            raise MediaError(f"video stream cannot be decoded ({exc})") from exc
        # A truncated file: keep what decoded, like a player would.


def iter_frames(source: Source, start: float = 0.0, duration: float = 0.0, max_frames: int = 0,
                fps: float = 0.0, stride: int = 1, plan: ResizePlan | None = None,
                resize: dict | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """Yield (time from window start, uint8 [H, W, 3]) for the window [start, start + duration).

    duration 0 = to the end; max_frames 0 = no limit (counted after stride); fps 0 = source frames
    as they are, else the timeline is resampled to exactly ``fps``; stride keeps every n-th frame.
    ``resize`` = plan_resize keyword arguments (mode/width/height/multiple_of), planned on the
    source size; or give a ready ``plan``.
    """
    _check_window(start, duration, max_frames, fps, stride)
    with open_input(source) as container:
        if not container.streams.video:
            raise MediaError(f"{source_name(source)} has no video stream")
        yield from _window_frames(container, start, duration, max_frames, fps, stride, plan, resize)


def _window_frames(container, start: float, duration: float, max_frames: int, fps: float, stride: int,
                   plan: ResizePlan | None, resize: dict | None) -> Iterator[tuple[float, np.ndarray]]:
    """``iter_frames`` on an open container with a video stream."""
    end = start + duration if duration > 0 else float("inf")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    if plan is None and resize:
        plan = plan_resize(stream.codec_context.width, stream.codec_context.height, **resize)
    convert = _converter(plan)
    picked = emitted = 0
    # Timestamps are rounded to the stream's time base (1 ms in mkv): within one tick counts as on time.
    eps = max(TIME_EPS, float(stream.time_base or 0))
    timeline = _resampled if fps > 0 else _native
    last_frame, last_rgb = None, None
    frames = _source_frames(container, stream, start, origin_seconds(container))
    for t, frame in timeline(frames, start, end, fps, eps):
        if picked % stride == 0:
            if frame is not last_frame:  # held frames repeat: convert once
                last_frame, last_rgb = frame, convert(frame)
            yield t - start, last_rgb
            emitted += 1
            if max_frames and emitted >= max_frames:
                return
        picked += 1


def _native(frames, start: float, end: float, fps: float, eps: float = TIME_EPS):
    for t, _dur, frame in frames:
        if t >= end - eps:
            return
        if t >= start - eps:
            yield t, frame


def _resampled(frames, start: float, end: float, fps: float, eps: float = TIME_EPS):
    k = 0
    target = start
    held = None  # (time, duration, frame) on screen before the incoming one
    for t, dur, frame in frames:
        while target < end - eps and target < t - eps:
            # Targets before the very first decoded frame show that first frame.
            yield target, (held[2] if held is not None else frame)
            k += 1
            target = start + k / fps
        if target >= end - eps:
            return
        held = (t, dur, frame)
    if held is None:
        return
    stream_end = held[0] + held[1]
    while target < min(end, stream_end) - eps:
        yield target, held[2]
        k += 1
        target = start + k / fps


def _converter(plan: ResizePlan | None):
    # One swscale context for the whole stream: ``frame.to_ndarray(format=...)`` builds a new context (and its
    # slice-thread pool) for every frame, which cost as much as the conversion itself.
    reformatter = VideoReformatter()

    def convert(frame: av.VideoFrame) -> np.ndarray:
        if plan is None or (plan.scaled_w, plan.scaled_h) == (frame.width, frame.height):
            rgb = reformatter.reformat(frame, format="rgb24").to_ndarray()
        else:
            rgb = reformatter.reformat(frame, width=plan.scaled_w, height=plan.scaled_h, format="rgb24",
                                       interpolation="AREA").to_ndarray()
        return plan.crop(rgb) if plan is not None else rgb

    return convert


def decode_video(source: Source, start: float = 0.0, duration: float = 0.0, max_frames: int = 0,
                 fps: float = 0.0, stride: int = 1, resize: dict | None = None,
                 callback: Callable[[int, int], None] | None = None) -> DecodedVideo:
    """Gather ``iter_frames`` into an IMAGE batch; raises MediaError when the window is empty.

    ``callback(frames_done, expected_total)`` runs after each frame (the total is an estimate).
    """
    _check_window(start, duration, max_frames, fps, stride)  # bad settings first, then the memory they need
    with open_input(source) as container:  # one open for the probe and the frames
        return _decode_window(container, source_name(source), start, duration, max_frames, fps, stride, resize,
                              callback)


def _decode_window(container, name: str, start: float, duration: float, max_frames: int, fps: float, stride: int,
                   resize: dict | None, callback: Callable[[int, int], None] | None) -> DecodedVideo:
    info = _probe(container, name)
    expected = expected_frames(info, start, duration, max_frames, fps, stride)
    width, height = info.width or 0, info.height or 0
    if resize:
        plan = plan_resize(width, height, **resize)
        width, height = plan.out_w, plan.out_h
    # Each frame is written straight into a preallocated float32 IMAGE (12 bytes a pixel, plus the frame
    # being converted): no list of uint8 frames, no stack, no separate convert and divide passes.
    frame_bytes = max(1, width * height * 3)
    count = max(expected, min(info.frame_count or 0, max_frames or (info.frame_count or 0)))
    require(count * frame_bytes * 4, f"decoding {count} frames of {width}x{height} as float32")
    times: list[float] = []
    images: torch.Tensor | None = None
    for t, rgb in _window_frames(container, start, duration, max_frames, fps, stride, None, resize):
        n = len(times)
        if images is None or n == images.shape[0]:  # the container may understate its length: grow by half
            images = _grown(images, n, max(count, 1) if images is None else n + n // 2 + 1, rgb.shape)
            buffer = images.numpy()
        if rgb.shape != images.shape[1:]:
            raise MediaError(f"frame {n} of {name} is {rgb.shape[1]}x{rgb.shape[0]}, the first was "
                             f"{images.shape[2]}x{images.shape[1]}; resize to one size to load it")
        # One single-threaded pass, float32(x) / 255 as .to(float32).div_(255) computes it (the same bits); a
        # torch op per frame pays its thread pool's start-up for a job this small.
        np.divide(rgb, np.float32(255.0), out=buffer[n], dtype=np.float32)
        times.append(t)
        if callback is not None:
            callback(len(times), max(expected, len(times)))
    if not times:
        raise MediaError(f"no frames in the window start={start} s, duration={duration or 'to end'} "
                         f"of {name} (its length is {info.duration or 'unknown'} s)")
    n = len(times)
    # The container overstated its length: a view when the spare frames are few, else a copy that frees them.
    images = images[:n] if n * 10 >= images.shape[0] * 9 else images[:n].clone()
    out_fps = (fps if fps > 0 else info.fps) / stride
    return DecodedVideo(images, times, out_fps, info.fps)


def _grown(images: torch.Tensor | None, used: int, capacity: int, shape: tuple) -> torch.Tensor:
    """A float32 [capacity, H, W, 3] buffer holding the ``used`` frames already in ``images``."""
    require(capacity * int(np.prod(shape)) * 4, f"decoding more than {used} frames of {shape[1]}x{shape[0]} as float32")
    # Allocated by numpy, which asks the kernel for huge pages on large buffers (madvise); torch.empty does not,
    # and faulting in 4 KiB pages cost about as much as the uint8 -> float32 pass that fills them.
    grown = torch.from_numpy(np.empty((capacity, *shape), dtype=np.float32))
    if images is not None and used:
        grown[:used] = images[:used]
    return grown


def expected_frames(info: VideoInfo, start: float, duration: float, max_frames: int, fps: float,
                    stride: int) -> int:
    """Frames a window should yield, from the container's stated length (for progress bars)."""
    length = max(0.0, (info.duration or 0.0) - start)
    if duration > 0:
        length = min(length, duration)
    rate = fps if fps > 0 else info.fps
    count = int(math.ceil(length * rate / stride - 1e-6)) if rate else 0
    return min(count, max_frames) if max_frames else count


def fps_fraction(fps: float) -> Fraction:
    """A rational rate for encoders: 29.97 -> 30000/1001, 24 -> 24."""
    return Fraction(fps).limit_denominator(1001)


def timeline_indices(count: int, source_fps: float, start: float = 0.0, duration: float = 0.0,
                     max_frames: int = 0, fps: float = 0.0, stride: int = 1) -> list[int]:
    """Frame indices of an in-memory clip (frame i shown from i / source_fps) for a window, with the
    same sample-and-hold resampling and stride rules as ``iter_frames``."""
    _check_window(start, duration, max_frames, fps, stride)
    if source_fps <= 0:
        raise MediaError(f"source frame rate must be > 0, got {source_fps}")
    length = count / source_fps
    end = min(start + duration, length) if duration > 0 else length
    if fps > 0:
        picks, k = [], 0
        while start + k / fps < end - TIME_EPS:
            picks.append(min(count - 1, int(math.floor((start + k / fps) * source_fps + TIME_EPS * source_fps))))
            k += 1
    else:
        first = int(math.ceil((start - TIME_EPS) * source_fps))
        picks = [i for i in range(max(0, first), count) if i / source_fps < end - TIME_EPS]
    picks = picks[::stride]
    return picks[:max_frames] if max_frames else picks
