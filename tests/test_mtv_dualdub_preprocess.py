"""MTV (suimuc/MTV_Framework @ 5704fe6) and DualDub (paper 3.2, no public code) front ends at awkward rates."""
from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch

from soundstage.models.dualdub import preprocess as DD
from soundstage.models.mtv import preprocess as MTV
from soundstage.models.mtv.wav2vec_features import pad_to_clip_grid
from soundstage.pipelines.dualdub import speaker_reference

RATES = {"23.976": Fraction(24000, 1001), "29.97": Fraction(30000, 1001), "60": Fraction(60)}


# ------------------------------------------------------------------ MTV


@pytest.mark.parametrize("name", list(RATES))
@pytest.mark.parametrize("seconds", [1.0, 2.05, 4.7])
def test_mtv_audio_frames_follow_the_video_rate(name, seconds):
    rate = RATES[name]
    n = round(seconds * 16000)
    frames = MTV.audio_frames(n, float(rate))  # the node's float input, snapped to the container rate
    # audio_processor.py L72: seq_len = ceil(len / 16000 * fps), one feature frame per video frame.
    assert frames == math.ceil(n / 16000 * float(rate))
    assert frames / rate >= Fraction(n, 16000) > (frames - 1) / rate
    # L77-80: padded to 48k + 1 frames for 49-frame chunks, int(extra * (16000 // fps)) samples.
    wav, seq_len = pad_to_clip_grid(torch.zeros(n), float(rate), 49)
    assert (seq_len - 1) % 48 == 0 and seq_len >= frames
    assert wav.shape[-1] == n + int((seq_len - frames) * (16000 // float(rate)))


@pytest.mark.parametrize("src", [(61, 97), (97, 61), (721, 1283), (480, 720), (33, 47)])
def test_mtv_keyframe_covers_and_centre_crops(src):
    """data_video.py L34-62: cover 480x720 (other side truncated), uint8 bicubic, centre crop."""
    h, w = src
    torch.manual_seed(0)
    u8 = torch.randint(0, 256, (1, 3, h, w), dtype=torch.uint8)
    out = MTV.resize_for_rectangle_crop(u8, 48, 72)
    assert out.shape == (1, 3, 48, 72) and out.dtype == torch.uint8
    size = (48, int(w * 48 / h)) if w / h > 72 / 48 else (int(h * 72 / w), 72)
    assert size[0] >= 48 and size[1] >= 72
    full = torch.nn.functional.interpolate(u8, size=size, mode="bicubic", antialias=True, align_corners=False)
    top, left = (size[0] - 48) // 2, (size[1] - 72) // 2
    assert torch.equal(out, full[..., top:top + 48, left:left + 72])
    # The node's IMAGE path lands on the same uint8 pixels.
    px = MTV.keyframe_pixels(u8.permute(0, 2, 3, 1).float() / 255, 48, 72)
    assert torch.equal((px * 255).round().to(torch.uint8).permute(0, 3, 1, 2), out)


def test_mtv_keyframe_keeps_aspect_instead_of_squashing():
    image = torch.zeros(1, 100, 400, 3)
    image[:, :, :100] = 1.0  # a bright left quarter, outside the 2:3 centre window
    px = MTV.keyframe_pixels(image, 48, 72)
    assert px[0, :, :4].max() < 0.05  # cropped, not squashed in


# ------------------------------------------------------------------ DualDub


@pytest.mark.parametrize("name", list(RATES))
@pytest.mark.parametrize("count", [30, 31, 121])
def test_dualdub_clip_frames_every_third_with_exact_times(name, count):
    rate = RATES[name]
    idx = DD.clip_frame_indices(count)
    assert idx.tolist() == list(range(0, count, 3))  # paper 3.2: one image every three frames
    times = DD.frame_times(idx, float(rate))
    for i, t in zip(idx.tolist(), times.tolist()):
        assert abs(t - float(Fraction(i) / rate)) < 1e-6
    assert DD.clip_seconds(count, float(rate)) == float(Fraction(count) / rate)


@pytest.mark.parametrize("sr", [16000, 44100, 48000])
def test_dualdub_speaker_reference_is_3s_mono_at_codec_rate(sr):
    wav = torch.randn(1, 2, sr * 5)
    ref = speaker_reference({"waveform": wav, "sample_rate": sr}, 24000)
    assert ref.dim() == 1 and ref.shape[-1] == 3 * 24000
    short = speaker_reference({"waveform": wav[..., :sr], "sample_rate": sr}, 24000)
    assert short.shape[-1] == 24000
