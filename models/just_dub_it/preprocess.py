"""JUST-DUB-IT's clip preparation, as Dr-Ake/just-dub-it @ 48d5b5b runs it (LTX-2.0 pipelines).

packages/ltx-pipelines/src/ltx_pipelines/pipeline_justdubit.py:
- L379-382: the reference video is cut to the largest 8k+1 frame count (causal VAE);
- L411: the target duration is frames / frame rate;
- L419-428: the source audio, at its own rate, is trimmed or zero-padded to int(duration * rate) samples;
- L431-434: log-mel at 16 kHz (resampled in ltx_core audio_vae/ops.py L34-44), mono duplicated to stereo.
media_io.py L16-52: frames scaled to cover (sizes rounded up), bilinear, centre crop (floor offsets), [-1, 1].

The frame rate is the source's own exact rate (30000/1001 stays exact); the reference takes it from a
command-line flag instead, so a 29.97 fps clip needs it passed by hand there.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import torch

from ..common.frame_rate import exact_rate
from .av_codec import fit_frames, fit_waveform
from .schedule import valid_frame_count


@dataclass
class ReferenceClip:
    pixels: torch.Tensor  # [F, 3, height, width] in 0..1, F = 8k + 1
    waveform: torch.Tensor  # [C, N] at the source audio's rate, N = int(F / fps * rate)
    frames: int
    fps: Fraction
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return float(self.frames / self.fps)


def prepare_reference_clip(images: torch.Tensor, fps, waveform: torch.Tensor, sample_rate: int, height: int,
                           width: int, max_frames: int = 0) -> ReferenceClip:
    """IMAGE [T, H, W, 3] + its audio [C, N] -> the frames and audio JUST-DUB-IT conditions on
    (``clip_geometry`` in ``pipelines.just_dub_it`` checks the sizes first)."""
    rate = exact_rate(fps)
    count = images.shape[0] if max_frames <= 0 else min(images.shape[0], max_frames)
    frames = valid_frame_count(count)
    pixels = fit_frames(images[:frames], height, width)
    wav = fit_waveform(waveform.float(), int(sample_rate), float(frames / rate))
    return ReferenceClip(pixels, wav, frames, rate, int(sample_rate))
