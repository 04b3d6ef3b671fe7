"""Audio from any file PyAV decodes (wav, flac, mp3, ogg/opus, m4a/aac, a video's soundtrack),
streamed over a window, plus resampling (torchaudio) and channel conversion.

Waveforms are float32 tensors [channels, samples]; ComfyUI's AUDIO wraps them as
{"waveform": [batch, channels, samples], "sample_rate": int}.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import av
import numpy as np
import torch
import torchaudio.functional as AF

from .errors import MediaError
from .source import Source, decoder_of, open_input, origin_seconds, source_name

MIN_RATE, MAX_RATE = 1000, 384000
MAX_CHANNELS = 16
SQRT_HALF = math.sqrt(0.5)
AUDIO_PREROLL_S = 0.2


@dataclass
class AudioInfo:
    sample_rate: int
    channels: int
    duration: float | None
    codec: str
    title: str | None = None
    language: str | None = None


def probe_audio(source: Source) -> list[AudioInfo]:
    """One entry per audio stream (empty when the file has none)."""
    with open_input(source) as container:
        out = []
        for stream in container.streams.audio:
            cc = decoder_of(stream, source_name(source))
            duration = float(stream.duration * stream.time_base) if stream.duration is not None else (
                container.duration / av.time_base if container.duration is not None else None)
            out.append(AudioInfo(cc.sample_rate, cc.channels, duration, cc.name,
                                 track_title(stream.metadata), stream.metadata.get("language", "und")))
        return out


def track_title(metadata: dict) -> str | None:
    # mkv stores "title"; FFmpeg's mp4 muxer writes it as "name" (and we mirror it in handler_name).
    for key in ("title", "name", "handler_name"):
        value = metadata.get(key)
        if value and value not in ("SoundHandler", "VideoHandler"):
            return value
    return None


def load_audio(source: Source, start: float = 0.0, duration: float = 0.0, stream_index: int = 0,
               sample_rate: int = 0, channels: int = 0) -> tuple[torch.Tensor, int]:
    """Decode [start, start + duration) of one audio stream (duration 0 = to the end).

    Times count from the file's origin (shared with its video). sample_rate/channels 0 keep the
    source's. Raises MediaError for no audio stream, an empty window or undecodable data.
    """
    if start < 0 or duration < 0:
        raise MediaError(f"start and duration must be >= 0 s (got {start}, {duration})")
    name = source_name(source)
    with open_input(source) as container:
        if not container.streams.audio:
            raise MediaError(f"{name} has no audio stream")
        if not 0 <= stream_index < len(container.streams.audio):
            raise MediaError(f"{name} has {len(container.streams.audio)} audio stream(s); "
                             f"stream index {stream_index} does not exist")
        stream = container.streams.audio[stream_index]
        decoder_of(stream, name)
        wave, rate = _decode_window(container, stream, start, duration, origin_seconds(container), name)
    if wave.shape[-1] == 0:
        raise MediaError(f"{name} has no audio samples in the window start={start} s, "
                         f"duration={duration or 'to end'}")
    if sample_rate:
        wave = resample(wave, rate, sample_rate)
        rate = sample_rate
    if channels:
        wave = convert_channels(wave, channels)
    return wave, rate


def _decode_window(container, stream, start: float, duration: float, origin: float, name: str):
    end = start + duration if duration > 0 else float("inf")
    if stream.duration is not None:
        # Codec end padding (AAC's last frame) is not part of the stream's stated duration.
        end = min(end, float(stream.duration * stream.time_base) + float(
            (stream.start_time or 0) * stream.time_base) - origin)
    if start > 0:
        try:
            # Land a little early: lossy decoders (AAC, Opus, MP3) need a frame of pre-roll after a seek.
            target = max(0.0, start - AUDIO_PREROLL_S) + origin
            container.seek(int(target / stream.time_base), stream=stream, backward=True)
        except av.error.FFmpegError:
            container.seek(0, stream=stream)
    to_planar = av.AudioResampler(format="fltp")
    rate = stream.codec_context.sample_rate or stream.rate
    chunks: list[np.ndarray] = []
    first_time = None
    decoded = 0
    try:
        for frame in container.decode(stream):
            rate = frame.sample_rate
            t = float(frame.pts * frame.time_base) - origin if frame.pts is not None else (
                (first_time or 0.0) + decoded / rate)
            if first_time is None:
                first_time = _snap_to_frame_grid(t, frame.samples, rate, stream.time_base)
            if t >= end:
                break
            for planar in to_planar.resample(frame):
                chunks.append(planar.to_ndarray())
            decoded += frame.samples
    except av.error.FFmpegError as exc:
        if not chunks:
            raise MediaError(f"{name}: audio stream cannot be decoded ({exc})") from exc
    if not chunks:
        return torch.zeros(max(1, stream.codec_context.channels), 0), int(rate or 48000)
    wave = torch.from_numpy(np.concatenate(chunks, axis=1).astype(np.float32, copy=False))
    skip = max(0, int(round((start - first_time) * rate)))
    wave = wave[:, skip:]
    if math.isfinite(end):
        wave = wave[:, : int(round((end - max(start, first_time)) * rate))]
    return wave.contiguous(), int(rate)


def _snap_to_frame_grid(t: float, samples: int, rate: int, time_base) -> float:
    """Undo timestamp rounding of coarse time bases (mkv's 1 ms vs a 1/48000 s sample): frames of a
    constant size laid end to end from 0 start on multiples of that size."""
    if not samples or time_base is None or float(time_base) <= 1.0 / rate:
        return t
    period = samples / rate
    snapped = round(t / period) * period
    return snapped if abs(snapped - t) <= float(time_base) else t


def resample(wave: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """Band-limited resampling (torchaudio's windowed sinc)."""
    for r in (orig_rate, new_rate):
        if not MIN_RATE <= int(r) <= MAX_RATE:
            raise MediaError(f"sample rate must be in [{MIN_RATE}, {MAX_RATE}] Hz, got {r}")
    if int(orig_rate) == int(new_rate):
        return wave
    return AF.resample(wave.to(torch.float32), int(orig_rate), int(new_rate))


def convert_channels(wave: torch.Tensor, channels: int) -> torch.Tensor:
    """Channel conversion on [C, T]: mono <-> stereo, 5.1 -> stereo (ITU-R BS.775 downmix), else
    mean-downmix / repeat."""
    if not 1 <= channels <= MAX_CHANNELS:
        raise MediaError(f"channels must be in [1, {MAX_CHANNELS}], got {channels}")
    have = wave.shape[0]
    if have == channels:
        return wave
    if channels == 2 and have == 6:
        # FFmpeg 5.1 order FL FR FC LFE BL BR; BS.775 gains, LFE dropped, normalised to avoid clipping.
        fl, fr, fc, _lfe, bl, br = wave
        left = fl + SQRT_HALF * fc + SQRT_HALF * bl
        right = fr + SQRT_HALF * fc + SQRT_HALF * br
        return torch.stack([left, right]) / (1 + 2 * SQRT_HALF)
    if channels == 1:
        return wave.mean(dim=0, keepdim=True)
    if have == 1:
        return wave.expand(channels, -1).clone()
    if have > channels:
        return wave[:channels].clone()
    return torch.cat([wave, wave[-1:].expand(channels - have, -1)], dim=0)


def to_comfy_audio(wave: torch.Tensor, sample_rate: int) -> dict:
    """[C, T] -> core AUDIO dict with a batch of one."""
    return {"waveform": wave.unsqueeze(0).to(torch.float32).contiguous(), "sample_rate": int(sample_rate)}


def from_comfy_audio(audio: dict, what: str = "audio") -> tuple[torch.Tensor, int]:
    """Core AUDIO dict -> ([C, T], rate), taking batch item 0; rejects malformed or empty audio."""
    if not isinstance(audio, dict) or "waveform" not in audio or "sample_rate" not in audio:
        raise MediaError(f"{what} is not an AUDIO value (needs 'waveform' and 'sample_rate')")
    wave = audio["waveform"]
    if not torch.is_tensor(wave):
        wave = torch.as_tensor(np.asarray(wave))
    if wave.ndim == 3:
        wave = wave[0]
    elif wave.ndim == 1:
        wave = wave.unsqueeze(0)
    if wave.ndim != 2 or wave.shape[-1] == 0:
        raise MediaError(f"{what} is empty or misshaped (waveform shape {tuple(audio['waveform'].shape)})")
    rate = int(audio["sample_rate"])
    if not MIN_RATE <= rate <= MAX_RATE:
        raise MediaError(f"{what} has an invalid sample rate {rate}")
    return wave.to(torch.float32), rate
