"""Frames + N named audio tracks -> mp4 (H.264/H.265 + AAC) or mkv (H.264/H.265 + AAC/Opus/FLAC).

Per-track title/language tags and a default-track flag make a delivery file (mix + dialogue +
effects + music stems, the "M&E" layout) that players and editors list by name. Durations are
aligned exactly: every audio track is cut or padded to the video's frame count / fps (or the
video is cut/held to the audio), and audio is interleaved with the video as it is encoded.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import av
import numpy as np
import torch

from .audio_io import resample
from .decode import fps_fraction
from .encode import AUDIO_CODECS, add_audio_stream, audio_frame
from .errors import MediaError
from .source import open_input

CONTAINERS = {
    "mp4": {"video": ("h264", "h265"), "audio": ("aac",)},
    "mkv": {"video": ("h264", "h265"), "audio": ("aac", "opus", "flac")},
}
VIDEO_ENCODERS = {"h264": "libx264", "h265": "libx265"}
EVEN_MODES = ("pad", "crop", "scale")
ALIGN_MODES = ("video", "shortest", "longest")
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
AUDIO_CHUNK = 2048


@dataclass
class AudioTrack:
    wave: torch.Tensor  # [C, T]
    sample_rate: int
    title: str = ""
    language: str = "und"  # ISO 639-2 (3 letters), as mp4/mkv store it
    default: bool = False


@dataclass
class MuxResult:
    path: str
    frames: int
    fps: float
    width: int
    height: int
    duration: float
    track_samples: list[int] = field(default_factory=list)
    track_rates: list[int] = field(default_factory=list)


def check_mux_options(container_format: str, video_codec: str, audio_codec: str, even: str, align: str,
                      crf: int, preset: str) -> None:
    if container_format not in CONTAINERS:
        raise MediaError(f"container must be one of {tuple(CONTAINERS)}, got {container_format!r}")
    allowed = CONTAINERS[container_format]
    if video_codec not in allowed["video"]:
        raise MediaError(f"{container_format} takes video codecs {allowed['video']}, got {video_codec!r}")
    if audio_codec not in allowed["audio"]:
        raise MediaError(f"{container_format} takes audio codecs {allowed['audio']}, got {audio_codec!r}")
    if even not in EVEN_MODES:
        raise MediaError(f"even-size handling must be one of {EVEN_MODES}, got {even!r}")
    if align not in ALIGN_MODES:
        raise MediaError(f"duration alignment must be one of {ALIGN_MODES}, got {align!r}")
    if not 0 <= crf <= 51:
        raise MediaError(f"crf must be in [0, 51], got {crf}")
    if preset not in PRESETS:
        raise MediaError(f"preset must be one of {PRESETS}, got {preset!r}")


def check_language(language: str) -> str:
    language = (language or "und").strip().lower()
    if len(language) != 3 or not language.isalpha():
        raise MediaError(f"language must be a 3-letter ISO 639-2 code like 'eng', 'fra', 'und', got {language!r}")
    return language


def image_frames(images: torch.Tensor) -> Iterator[np.ndarray]:
    """IMAGE [N, H, W, 3] float 0..1 -> uint8 frames, one at a time (no full uint8 copy)."""
    if images.ndim != 4 or images.shape[-1] not in (3, 4) or images.shape[0] == 0:
        raise MediaError(f"frames must be IMAGE [N, H, W, 3] with N >= 1, got shape {tuple(images.shape)}")
    for frame in images:
        yield (frame[..., :3].clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy()


def even_size(width: int, height: int, even: str) -> tuple[int, int]:
    if even == "pad":
        return width + width % 2, height + height % 2
    return max(2, width - width % 2), max(2, height - height % 2)


def _make_even(rgb: np.ndarray, even: str) -> np.ndarray:
    h, w = rgb.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return rgb
    if even == "pad":  # repeat the edge row/column: invisible, unlike a black line
        return np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    if even == "crop":
        return rgb[: h - h % 2, : w - w % 2]
    tw, th = even_size(w, h, even)
    return av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(
        width=tw, height=th, interpolation="BICUBIC").to_ndarray()


def mux(path: str | os.PathLike, frames: Iterable[np.ndarray] | torch.Tensor, fps: float,
        tracks: list[AudioTrack], container_format: str = "mp4", video_codec: str = "h264",
        audio_codec: str = "aac", crf: int = 18, preset: str = "medium", even: str = "pad",
        align: str = "video", audio_bitrate_kbps: int = 192, frame_count: int | None = None) -> MuxResult:
    """Encode ``frames`` (IMAGE tensor, or uint8 [H, W, 3] arrays, or iter_frames' (time, array)) at ``fps``.

    align: "video" = audio cut/padded with silence to the video; "shortest" = stop everything
    at the shortest of video and tracks; "longest" = hold the last frame / pad audio with
    silence to the longest. ``frame_count`` (when an iterable's length is known) lets
    "shortest"/"longest" know the video length up front; tensors know it themselves.
    """
    check_mux_options(container_format, video_codec, audio_codec, even, align, crf, preset)
    if not 0 < fps <= 1000:
        raise MediaError(f"fps must be in (0, 1000], got {fps}")
    for i, t in enumerate(tracks):
        if t.wave.ndim != 2 or t.wave.shape[-1] == 0:
            raise MediaError(f"audio track {i + 1} ({t.title or 'untitled'}) is empty")
        if audio_codec == "opus" and t.wave.shape[0] > 2:
            raise MediaError(f"audio track {i + 1}: opus takes mono or stereo, got {t.wave.shape[0]} channels")
    if torch.is_tensor(frames):
        frame_count = int(frames.shape[0])
        frames = image_frames(frames)
    rate = fps_fraction(fps)
    audio_seconds = [t.wave.shape[-1] / t.sample_rate for t in tracks]
    limit_frames = None  # cut video here ("shortest")
    if align == "shortest" and tracks:
        limit_frames = max(1, int(round(min(audio_seconds) * float(rate))))
        if frame_count is not None:
            limit_frames = min(limit_frames, frame_count)
    hold_to = None  # hold last frame up to here ("longest")
    if align == "longest" and tracks:
        hold_to = int(np.ceil(max(audio_seconds) * float(rate) - 1e-9))

    path = os.fspath(path)
    try:
        container = av.open(path, "w", format="matroska" if container_format == "mkv" else "mp4")
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(f"cannot write {os.path.basename(path)}: {exc}") from exc
    try:
        return _write(container, path, frames, rate, tracks, container_format, video_codec, audio_codec,
                      crf, preset, even, audio_bitrate_kbps, limit_frames, hold_to)
    except BaseException:
        container.close()
        if os.path.exists(path):
            os.remove(path)  # never leave a half-written file that looks like output
        raise


def _write(container, path, frames, rate, tracks, container_format, video_codec, audio_codec, crf, preset,
           even, bitrate, limit_frames, hold_to) -> MuxResult:
    iterator = (item[1] if isinstance(item, tuple) else item for item in frames)  # (time, rgb) from iter_frames
    first = next(iterator, None)
    if first is None:
        raise MediaError("no video frames to mux")
    first = _make_even(np.asarray(first, dtype=np.uint8), even)
    height, width = first.shape[:2]
    video = container.add_stream(VIDEO_ENCODERS[video_codec], rate=rate)
    video.width, video.height, video.pix_fmt = width, height, "yuv420p"  # 4:2:0: what every player decodes
    options = {"crf": str(crf), "preset": preset}
    if video_codec == "h265":
        options["x265-params"] = "log-level=error"
        if container_format == "mp4":
            video.codec_tag = "hvc1"  # Apple players want hvc1, not hev1
    video.options = options
    # Frame threading, as the ffmpeg CLI does; PyAV's default slice threading makes x264 ~1.3x slower at 360p.
    video.thread_type = "FRAME"
    video.disposition = av.stream.Disposition.default

    writers = _track_writers(container, tracks, container_format, audio_codec, bitrate)

    count = 0
    last = first
    current = first
    while current is not None:
        if limit_frames is not None and count >= limit_frames:
            break
        current = _make_even(np.asarray(current, dtype=np.uint8), even)
        if current.shape[:2] != (height, width):
            raise MediaError(f"frame {count} is {current.shape[1]}x{current.shape[0]}, "
                             f"the first was {width}x{height}: all frames must share one size")
        _encode_video(container, video, current, count)
        last, count = current, count + 1
        for writer in writers:  # interleave: audio up to the video's current time
            writer.write_until(count / rate)
        current = next(iterator, None)
    while hold_to is not None and count < hold_to:
        _encode_video(container, video, last, count)
        count += 1
    for packet in video.encode(None):
        container.mux(packet)
    duration = count / rate
    for writer in writers:
        writer.finish(duration)
    container.close()
    return MuxResult(path, count, float(rate), width, height, float(duration),
                     [w.total for w in writers], [w.rate for w in writers])


def _encode_video(container, stream, rgb: np.ndarray, index: int) -> None:
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    frame.pts = index
    frame.time_base = 1 / stream.average_rate if stream.average_rate else None
    for packet in stream.encode(frame):
        container.mux(packet)


class _TrackWriter:
    """Writes one track in pieces, ending exactly at the video's duration (silence-padded)."""

    def __init__(self, container, stream, wave: torch.Tensor):
        self.container, self.stream = container, stream
        self.rate = stream.codec_context.sample_rate
        self.layout = stream.codec_context.layout.name
        self.wave = wave.clamp(-1.0, 1.0).numpy()
        self.written = 0
        self.total = 0

    def write_until(self, seconds) -> None:
        self._write_to(int(round(float(seconds) * self.rate)))

    def finish(self, seconds) -> None:
        self.total = int(round(float(seconds) * self.rate))
        self._write_to(self.total)
        for packet in self.stream.encode(None):
            self.container.mux(packet)

    def _write_to(self, end: int) -> None:
        while self.written < end:
            n = min(AUDIO_CHUNK, end - self.written)
            piece = self.wave[:, self.written:self.written + n]
            if piece.shape[1] < n:
                piece = np.pad(piece, ((0, 0), (0, n - piece.shape[1])))
            frame = audio_frame(piece, self.layout)
            frame.sample_rate = self.rate
            frame.pts = self.written
            for packet in self.stream.encode(frame):
                self.container.mux(packet)
            self.written += n


def remux(path: str | os.PathLike, source, tracks: list[AudioTrack], container_format: str = "mp4",
          audio_codec: str = "aac", audio_bitrate_kbps: int = 192) -> MuxResult:
    """Copy a file's video stream untouched (no re-encode, no quality loss) and add ``tracks``,
    each cut or silence-padded to the video's duration. The source's own audio is not copied."""
    check_mux_options(container_format, "h264", audio_codec, "pad", "video", 18, "medium")
    path = os.fspath(path)
    with open_input(source) as src:
        if not src.streams.video:
            raise MediaError("the source has no video stream to copy")
        vin = src.streams.video[0]
        codec = vin.codec_context.name
        if codec != "h264":
            # H.265 copies came out undecodable from mkv to mp4 in testing; re-encoding is the safe path.
            raise MediaError(f"video copy takes H.264 sources, this one is {codec}; use video_mode 're-encode'")
        try:
            out = av.open(path, "w", format="matroska" if container_format == "mkv" else "mp4")
        except (av.error.FFmpegError, OSError) as exc:
            raise MediaError(f"cannot write {os.path.basename(path)}: {exc}") from exc
        try:
            return _copy(src, vin, out, path, tracks, container_format, audio_codec, audio_bitrate_kbps)
        except BaseException:
            out.close()
            if os.path.exists(path):
                os.remove(path)
            raise


def _copy(src, vin, out, path, tracks, container_format, audio_codec, bitrate) -> MuxResult:
    vout = out.add_stream_from_template(template=vin, opaque=True)
    vout.disposition = av.stream.Disposition.default
    writers = _track_writers(out, tracks, container_format, audio_codec, bitrate)
    origin = None
    end = 0.0
    count = 0
    for packet in src.demux(vin):
        if packet.dts is None:
            continue  # the demuxer's flush packet
        t = float(packet.pts * packet.time_base) if packet.pts is not None else end
        origin = t if origin is None else min(origin, t)
        if packet.duration:
            end = max(end, t + float(packet.duration * packet.time_base))
        else:
            end = max(end, t)
        packet.stream = vout
        out.mux(packet)
        count += 1
        for writer in writers:
            writer.write_until(max(0.0, t - (origin or 0.0)))
    if count == 0:
        raise MediaError("the source's video stream has no packets")
    duration = end - (origin or 0.0)
    for writer in writers:
        writer.finish(duration)
    out.close()
    rate = vin.average_rate or vin.guessed_rate
    return MuxResult(path, count, float(rate) if rate else 0.0, vin.codec_context.width, vin.codec_context.height,
                     duration, [w.total for w in writers], [w.rate for w in writers])


def _track_writers(container, tracks, container_format, audio_codec, bitrate) -> list[_TrackWriter]:
    default_index = next((i for i, t in enumerate(tracks) if t.default), 0)
    writers = []
    for i, track in enumerate(tracks):
        stream, enc_rate = add_audio_stream(container, AUDIO_CODECS[audio_codec], track.sample_rate,
                                            track.wave.shape[0], bitrate)
        title = track.title or f"track {i + 1}"
        stream.metadata["title"] = title
        if container_format == "mp4":
            stream.metadata["handler_name"] = title  # what many mp4 players show as the track name
        stream.metadata["language"] = check_language(track.language)
        stream.disposition = av.stream.Disposition.default if i == default_index else av.stream.Disposition(0)
        writers.append(_TrackWriter(container, stream, resample(track.wave.to(torch.float32), track.sample_rate, enc_rate)))
    return writers
