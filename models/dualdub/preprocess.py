"""DualDub's front ends. No reference code is public: these follow the paper (section 3.2).

- video: "one image is taken every three frames in the video stream" -- a stride of 3 source frames
  at any frame rate, each frame keeping its exact timestamp i / fps for the aligner's time embedding;
- reference speech: "we randomly intercept 3 seconds of target speech, extract mel-spectrograms as the
  input of the speaker encoder" (the start at inference, a random 3 s when training);
- audio and speech tracks: one WavTokenizer for both, so every waveform enters at the codec's rate
  (24 kHz), mono (``media.mono_at_rate``; ``pipelines.dualdub.speaker_reference`` cuts the 3 s).
"""
from __future__ import annotations

from fractions import Fraction

import torch

from ..common.frame_rate import exact_rate

FRAME_STRIDE = 3  # paper 3.2: one image every three frames
REFERENCE_SECONDS = 3.0  # paper 3.2: 3 s of reference speech


def clip_frame_indices(count: int, stride: int = FRAME_STRIDE) -> torch.Tensor:
    return torch.arange(0, count, stride)


def frame_times(indices: torch.Tensor, fps) -> torch.Tensor:
    """Timestamps of the picked frames in seconds, from the exact rate (30000/1001, not 29.97)."""
    rate = exact_rate(fps)
    return torch.tensor([float(Fraction(int(i)) / rate) for i in indices], dtype=torch.float32)


def clip_seconds(count: int, fps) -> float:
    return float(Fraction(count) / exact_rate(fps))
