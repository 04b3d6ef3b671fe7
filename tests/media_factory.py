"""Test media made on the fly with PyAV: coloured frames, tones, clicks, noise, speech-like bursts.

No binary fixtures: every test writes what it needs into its tmp_path. Frames and signals are
deterministic, so a test can tell which source frame or sample ended up where:

- frame ``i`` is a flat colour whose red level is ``frame_level(i)`` (see ``frame_index_from_rgb``);
- ``video_frame_times(seconds, fps, vfr)`` gives the presentation times that ``make_video`` writes;
- ``synth_audio(kind, ...)`` returns the exact float signal that ``make_audio`` encodes.

Use: ``from media_factory import make_video, make_audio``.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

AUDIO_CODEC_BY_SUFFIX = {
    ".wav": "pcm_s16le",
    ".flac": "flac",
    ".mp3": "libmp3lame",
    ".ogg": "libopus",
    ".opus": "libopus",
    ".m4a": "aac",
    ".aac": "aac",
    ".mka": "flac",
}
AUDIO_KINDS = ("tone", "clicks", "noise", "speechlike", "silence")
LEVEL_STEP = 12  # red-level step between consecutive frames: survives yuv420p + lossy coding
TONE_HZ = 440.0
CLICK_EVERY_S = 0.25


# ----------------------------------------------------------------------------- frames
def frame_level(index: int) -> int:
    """Red level of frame ``index`` (wraps every 20 frames)."""
    return 16 + LEVEL_STEP * (index % 20)


def frame_index_from_rgb(rgb: np.ndarray) -> int:
    """Source frame index (mod 20) of a decoded frame, from its mean red level."""
    red = float(np.asarray(rgb, dtype=np.float64)[..., 0].mean())
    if red <= 1.0 + 1e-6 and np.asarray(rgb).dtype.kind == "f":
        red *= 255.0
    return int(round((red - 16) / LEVEL_STEP)) % 20


def make_frame(index: int, width: int, height: int) -> np.ndarray:
    """uint8 [H, W, 3] flat colour encoding ``index``; green/blue constant so chroma stays in range."""
    frame = np.empty((height, width, 3), dtype=np.uint8)
    frame[..., 0] = frame_level(index)
    frame[..., 1] = 96
    frame[..., 2] = 160
    return frame


def video_frame_times(seconds: float, fps: float, vfr: bool = False) -> list[float]:
    """Presentation times (s) of the frames ``make_video`` writes.

    Constant rate: ``i / fps``. VFR: frame durations cycle through 0.5, 1.0 and 1.5 frame periods
    (average rate ``fps``), rounded to the millisecond time base used for VFR files.
    """
    if not vfr:
        count = max(1, int(round(seconds * fps)))
        return [i / fps for i in range(count)]
    times, t, k = [], 0.0, 0
    pattern = (0.5, 1.0, 1.5)
    while t < seconds - 1e-9:
        times.append(round(t, 3))
        t += pattern[k % 3] / fps
        k += 1
    return times


# ----------------------------------------------------------------------------- audio
def synth_audio(kind: str, seconds: float, sample_rate: int = 48000, channels: int = 1,
                freq: float = TONE_HZ, amplitude: float = 0.5, seed: int = 0) -> np.ndarray:
    """float32 [channels, samples] test signal.

    tone: sine at ``freq``; clicks: one-sample impulses every 0.25 s starting at 0;
    noise: white noise; speechlike: harmonic bursts of ~0.3 s (syllables) separated by pauses,
    with 0.5 s of silence every second half-second pair so a detector sees speech/no-speech;
    silence: zeros. Channel c > 0 is the same signal scaled by 1 - 0.1 c (layouts stay visible).
    """
    if kind not in AUDIO_KINDS:
        raise ValueError(f"unknown audio kind {kind!r}; choose from {AUDIO_KINDS}")
    n = int(round(seconds * sample_rate))
    t = np.arange(n, dtype=np.float64) / sample_rate
    if kind == "tone":
        x = amplitude * np.sin(2 * np.pi * freq * t)
    elif kind == "clicks":
        x = np.zeros(n)
        step = int(round(CLICK_EVERY_S * sample_rate))
        x[::step] = amplitude
    elif kind == "noise":
        x = amplitude * np.random.default_rng(seed).uniform(-1.0, 1.0, n)
    elif kind == "speechlike":
        x = speech_gate(t) * _voice(t, amplitude, sample_rate)
    else:
        x = np.zeros(n)
    out = np.stack([x * (1.0 - 0.1 * c) for c in range(channels)])
    return out.astype(np.float32)


def speech_gate(t: np.ndarray) -> np.ndarray:
    """1 where the speech-like signal talks: the first 0.5 s of every second, else 0."""
    return ((np.asarray(t) % 1.0) < 0.5).astype(np.float64)


def _voice(t: np.ndarray, amplitude: float, sample_rate: int) -> np.ndarray:
    f0 = 140.0 + 20.0 * np.sin(2 * np.pi * 0.7 * t)  # gliding pitch like intonation
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    harmonics = sum(np.sin(k * phase) / k for k in range(1, 8))
    syllables = 0.6 + 0.4 * np.sin(2 * np.pi * 4.0 * t) ** 2  # ~4 Hz syllable envelope
    return amplitude * 0.6 * harmonics * syllables


def _layout(channels: int) -> str:
    return {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")


def _encode_audio(container, stream, data: np.ndarray, sample_rate: int, chunk: int = 1024) -> None:
    layout = _layout(data.shape[0])
    for start in range(0, data.shape[1], chunk):
        piece = np.ascontiguousarray(data[:, start:start + chunk])
        frame = av.AudioFrame.from_ndarray(piece, format="fltp", layout=layout)
        frame.sample_rate = sample_rate
        frame.pts = start
        frame.time_base = Fraction(1, sample_rate)
        for packet in stream.encode(frame):
            container.mux(packet)


def _flush(container, stream) -> None:
    for packet in stream.encode(None):
        container.mux(packet)


# ----------------------------------------------------------------------------- files
def make_audio(path, seconds: float = 1.0, sample_rate: int = 48000, channels: int = 1,
               kind: str = "tone", codec: str | None = None, **signal) -> Path:
    """Write an audio file; the codec follows the suffix (wav/flac/mp3/ogg/opus/m4a) unless given."""
    path = Path(path)
    codec = codec or AUDIO_CODEC_BY_SUFFIX.get(path.suffix.lower())
    if codec is None:
        raise ValueError(f"no default audio codec for {path.suffix!r}; pass codec=")
    data = synth_audio(kind, seconds, sample_rate, channels, **signal)
    options = {"format": "ogg"} if path.suffix.lower() == ".opus" else {}
    with av.open(str(path), "w", **options) as container:
        stream = container.add_stream(codec, rate=sample_rate, layout=_layout(channels))
        _encode_audio(container, stream, data, sample_rate)
        _flush(container, stream)
    return path


def make_video(path, seconds: float = 1.0, fps: float = 24, size: tuple[int, int] = (64, 48),
               audio: str | None = None, vfr: bool = False, codec: str = "libx264",
               audio_codec: str | None = None, sample_rate: int = 48000, channels: int = 2,
               pix_fmt: str = "yuv420p", crf: int = 10, gop: int | None = None) -> Path:
    """Write a video of flat coloured frames (see ``frame_level``), optionally with audio.

    ``size`` is (width, height); odd sizes need ``pix_fmt="yuv444p"`` for libx264.
    ``audio``: None, or an audio kind of ``synth_audio`` ("tone", "clicks", ...).
    ``vfr=True`` writes the irregular timestamps of ``video_frame_times`` in a 1/1000 time base.
    ``gop``: keyframe interval in frames (seek tests want short ones); None = encoder default.
    """
    path = Path(path)
    width, height = size
    rate = Fraction(fps).limit_denominator(1001)
    times = video_frame_times(seconds, float(rate), vfr)
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=rate)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        if codec in ("libx264", "libx265"):
            video.options = {"crf": str(crf), "preset": "ultrafast"} if codec == "libx264" else \
                {"crf": str(crf), "preset": "ultrafast", "x265-params": "log-level=error"}
        if gop:
            video.options = {**video.options, "g": str(gop), "keyint_min": str(gop)}
        time_base = Fraction(1, 1000) if vfr else 1 / rate
        video.codec_context.time_base = time_base
        astream = None
        if audio is not None:
            acodec = audio_codec or "aac"
            astream = container.add_stream(acodec, rate=sample_rate, layout=_layout(channels))
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(make_frame(i, width, height), format="rgb24")
            frame.pts = int(round(t / time_base))
            frame.time_base = time_base
            for packet in video.encode(frame):
                container.mux(packet)
        _flush(container, video)
        if astream is not None:
            _encode_audio(container, astream, synth_audio(audio, seconds, sample_rate, channels), sample_rate)
            _flush(container, astream)
    return path


def make_corrupt(path, source: Path | None = None, keep_fraction: float = 0.4) -> Path:
    """A truncated copy of ``source`` (or random bytes when None): for bad-input tests."""
    path = Path(path)
    if source is None:
        path.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    else:
        data = Path(source).read_bytes()
        path.write_bytes(data[: max(1, int(len(data) * keep_fraction))])
    return path
