"""Core AUDIO -> one mono signal at a given rate: what every speech/audio encoder of the pack takes."""
from __future__ import annotations

import torch

from .audio_io import resample


def mono_at_rate(audio: dict, rate: int) -> torch.Tensor:
    """The first clip of a core AUDIO dict ({"waveform": [B, C, T], "sample_rate"}), channels averaged,
    resampled to ``rate``: float32 [T]."""
    wave = audio["waveform"][0].float().mean(dim=0)
    return resample(wave, int(audio["sample_rate"]), int(rate))
