"""Save a waveform as wav / flac / opus / mp3."""
from __future__ import annotations

import os

import av
import torch

from .encode import add_audio_stream, write_audio
from .errors import MediaError

# format -> (container, encoder name in AUDIO_CODECS, file extension)
AUDIO_FORMATS = {
    "wav": ("wav", "pcm_s16", "wav"),
    "wav_24bit": ("wav", "pcm_s24", "wav"),
    "wav_float": ("wav", "pcm_f32", "wav"),
    "flac": ("flac", "flac", "flac"),
    "opus": ("ogg", "opus", "opus"),
    "mp3": ("mp3", "mp3", "mp3"),
}


def audio_extension(fmt: str) -> str:
    if fmt not in AUDIO_FORMATS:
        raise MediaError(f"audio format must be one of {tuple(AUDIO_FORMATS)}, got {fmt!r}")
    return AUDIO_FORMATS[fmt][2]


def save_audio(path: str | os.PathLike, wave: torch.Tensor, sample_rate: int, fmt: str = "flac",
               bitrate_kbps: int = 192, title: str = "", check=None) -> int:
    """Write [C, T]; returns the rate written (opus and mp3 only take some rates: resampled up).
    ``check()`` runs before each chunk (a node passes ComfyUI's interruption check)."""
    container_name, codec, _ext = AUDIO_FORMATS[fmt] if fmt in AUDIO_FORMATS else (None, None, audio_extension(fmt))
    if wave.ndim != 2 or wave.shape[-1] == 0:
        raise MediaError(f"cannot save empty audio (shape {tuple(wave.shape)})")
    if fmt in ("opus", "mp3") and wave.shape[0] > 2:
        raise MediaError(f"{fmt} takes mono or stereo, got {wave.shape[0]} channels")
    path = os.fspath(path)
    with av.open(path, "w", format=container_name) as container:
        if title:
            container.metadata["title"] = title
        stream, rate = add_audio_stream(container, codec, sample_rate, wave.shape[0], bitrate_kbps)
        write_audio(container, stream, wave, sample_rate, check)
    return rate
