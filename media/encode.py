"""Audio encoder set-up shared by the muxer and Save Audio: codec names, the sample rates each codec
accepts, bit rates, and writing a waveform into a stream chunk by chunk."""
from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import torch

from .audio_io import resample
from .errors import MediaError

AUDIO_CODECS = {  # user-facing name -> FFmpeg encoder
    "aac": "aac",
    "opus": "libopus",
    "flac": "flac",
    "mp3": "libmp3lame",
    "pcm_s16": "pcm_s16le",
    "pcm_s24": "pcm_s24le",
    "pcm_f32": "pcm_f32le",
}
# Rates each encoder accepts; others are resampled to the nearest one at or above the source.
CODEC_RATES = {
    "libopus": (8000, 12000, 16000, 24000, 48000),
    "libmp3lame": (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000),
    "aac": (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000),
}
LOSSY = ("aac", "libopus", "libmp3lame")
CHUNK = 4096


def encoder_rate(encoder: str, rate: int) -> int:
    rates = CODEC_RATES.get(encoder)
    if rates is None or rate in rates:
        return rate
    above = [r for r in rates if r >= rate]
    return above[0] if above else rates[-1]


def layout_name(channels: int) -> str:
    return {1: "mono", 2: "stereo", 6: "5.1"}.get(channels, f"{channels}c")


def add_audio_stream(container, codec: str, sample_rate: int, channels: int, bitrate_kbps: int = 0):
    """Add an audio stream; returns (stream, rate it encodes at)."""
    encoder = AUDIO_CODECS.get(codec, codec)
    if encoder == "libopus" and channels > 2:
        raise MediaError("opus here supports mono or stereo; convert channels first")
    rate = encoder_rate(encoder, sample_rate)
    try:
        stream = container.add_stream(encoder, rate=rate, layout=layout_name(channels))
    except (av.error.FFmpegError, ValueError) as exc:
        raise MediaError(f"cannot encode {codec} audio ({channels} ch, {rate} Hz) into "
                         f"{container.format.name}: {exc}") from exc
    if bitrate_kbps and encoder in LOSSY:
        stream.bit_rate = int(bitrate_kbps) * 1000
    return stream, rate


def audio_frame(samples: np.ndarray, layout: str) -> av.AudioFrame:
    """A float frame from [C, n] samples (planar; interleaved from 8 channels on, where PyAV's planar
    ``from_ndarray`` runs past its plane table)."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.shape[0] >= 8:
        return av.AudioFrame.from_ndarray(np.ascontiguousarray(samples.T).reshape(1, -1), format="flt", layout=layout)
    return av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="fltp", layout=layout)


def write_audio(container, stream, wave: torch.Tensor, source_rate: int, check=None) -> None:
    """Encode [C, T] into ``stream`` (resampling to the stream's rate) and flush it; ``check()`` (an
    interruption check) runs before each chunk."""
    rate = stream.codec_context.sample_rate
    data = resample(wave.to(torch.float32), source_rate, rate).clamp(-1.0, 1.0).numpy()
    layout = stream.codec_context.layout.name
    for start in range(0, data.shape[1], CHUNK):
        if check is not None:
            check()
        frame = audio_frame(data[:, start:start + CHUNK], layout)
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
