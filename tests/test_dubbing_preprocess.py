"""JUST-DUB-IT clip preparation against Dr-Ake/just-dub-it @ 48d5b5b (pipeline_justdubit.py, media_io.py)."""
from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch

from soundstage.models.just_dub_it.av_codec import fit_frames
from soundstage.models.just_dub_it.preprocess import prepare_reference_clip

RATES = {"23.976": Fraction(24000, 1001), "29.97": Fraction(30000, 1001), "60": Fraction(60)}


@pytest.mark.parametrize("name", list(RATES))
@pytest.mark.parametrize("count", [23, 49, 50, 97])
def test_frames_snap_down_to_8k_plus_1_and_audio_follows(name, count):
    rate = RATES[name]
    images = torch.rand(count, 61, 97, 3)
    sr = 44100
    wav = torch.randn(1, sr * 3)  # mono, longer than the clip
    for fps in (rate, float(rate)):  # a Fraction or its float: the same clip
        ref = prepare_reference_clip(images, fps, wav, sr, 64, 96)
        # pipeline_justdubit.py L379-382: largest 8k+1 not above the count.
        assert ref.frames == (count - 1) // 8 * 8 + 1 and ref.pixels.shape == (ref.frames, 3, 64, 96)
        assert ref.fps == rate
        # L411, L419-428: duration = frames / fps; audio cut at its own rate to int(duration * rate).
        assert ref.waveform.shape == (1, int(ref.frames / rate * sr))
        assert abs(ref.waveform.shape[-1] / sr - ref.duration_s) < 1 / sr
    short = prepare_reference_clip(images, rate, wav[:, :100], sr, 64, 96)
    assert short.waveform.shape[-1] == int(short.frames / rate * sr) and short.waveform[:, 100:].abs().max() == 0


def test_max_frames_caps_before_snapping():
    ref = prepare_reference_clip(torch.rand(97, 64, 64, 3), 24, torch.zeros(1, 16000), 16000, 64, 64, max_frames=40)
    assert ref.frames == 33


@pytest.mark.parametrize("src", [(61, 97), (97, 61), (720, 1281), (33, 33)])
def test_resize_covers_then_centre_crops(src):
    """media_io.py L16-48: scale = max(h/H, w/W), sizes rounded up, bilinear, floor crop offsets."""
    h, w = src
    ramp = torch.linspace(0, 1, w).view(1, 1, w, 1).expand(1, h, w, 3).contiguous()
    out = fit_frames(ramp, 64, 96)
    assert out.shape == (1, 3, 64, 96)
    scale = max(64 / h, 96 / w)
    nh, nw = math.ceil(h * scale), math.ceil(w * scale)
    ref = torch.nn.functional.interpolate(ramp.permute(0, 3, 1, 2), size=(nh, nw), mode="bilinear",
                                          align_corners=False)
    top, left = (nh - 64) // 2, (nw - 96) // 2
    torch.testing.assert_close(out, ref[..., top:top + 64, left:left + 96], rtol=0, atol=0)
