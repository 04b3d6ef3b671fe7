"""MMAudio log-mel front ends: framing, filterbank, agreement with torchaudio, invertibility sanity."""
from __future__ import annotations

import math

import pytest
import torch
import torchaudio

from soundstage.models.common.codecs.mel import MEL_16K, MEL_44K, LogMel, mel_config_for, mel_filterbank

CONFIGS = [pytest.param(MEL_16K, id="16k"), pytest.param(MEL_44K, id="44k")]


def _tone(freq: float, rate: int, seconds: float, amp: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(rate * seconds), dtype=torch.float64) / rate
    return (amp * torch.sin(2 * math.pi * freq * t)).float()


def test_presets_are_mmaudio_front_ends():
    assert (MEL_16K.sample_rate, MEL_16K.n_fft, MEL_16K.num_mels, MEL_16K.hop_length, MEL_16K.f_max) == (16000, 1024, 80, 256, 8000)
    assert MEL_16K.log_base == 10.0
    assert (MEL_44K.sample_rate, MEL_44K.n_fft, MEL_44K.num_mels, MEL_44K.hop_length, MEL_44K.f_max) == (44100, 2048, 128, 512, 22050)
    assert MEL_44K.log_base == pytest.approx(math.e)
    assert mel_config_for(80) is MEL_16K and mel_config_for(128) is MEL_44K
    with pytest.raises(ValueError, match="100 mel bands"):
        mel_config_for(100)


@pytest.mark.parametrize("config", CONFIGS)
def test_filterbank_matches_torchaudio_slaney(config):
    fb = mel_filterbank(config.sample_rate, config.n_fft, config.num_mels, config.f_min, config.f_max)
    ref = torchaudio.functional.melscale_fbanks(
        config.n_fft // 2 + 1, config.f_min, config.f_max, config.num_mels, config.sample_rate,
        norm="slaney", mel_scale="slaney",
    ).T
    assert fb.shape == (config.num_mels, config.n_fft // 2 + 1)
    assert (fb - ref).abs().max() <= 1e-6 * ref.abs().max()
    # Nothing above f_max reaches the mel bands.
    above = torch.linspace(0, config.sample_rate / 2, config.n_fft // 2 + 1) > config.f_max + config.sample_rate / config.n_fft
    assert fb[:, above].abs().max() == 0


@pytest.mark.parametrize("config", CONFIGS)
def test_frames_and_log_base(config):
    front = LogMel(config)
    n = config.hop_length * 7 + 13
    x = torch.randn(2, n) * 0.1
    mel = front(x)
    assert mel.shape == (2, config.num_mels, n // config.hop_length) == (2, config.num_mels, front.num_frames(n))
    # The log of the floor is the floor of the output: silence maps to log_base(1e-5).
    silent = front(torch.zeros(1, n))
    floor = math.log(1e-5) / math.log(config.log_base)
    assert torch.allclose(silent, torch.full_like(silent, floor), atol=1e-4)
    # Input outside [-1, 1] is clamped, as MMAudio does.
    assert torch.allclose(front(x.sign() * 3), front(x.sign()), atol=1e-5)


@pytest.mark.parametrize("config", CONFIGS)
def test_matches_torchaudio_melspectrogram(config):
    front = LogMel(config)
    x = torch.randn(1, config.hop_length * 20) * 0.3
    pad = (config.n_fft - config.hop_length) // 2
    ta = torchaudio.transforms.MelSpectrogram(
        sample_rate=config.sample_rate, n_fft=config.n_fft, win_length=config.win_length,
        hop_length=config.hop_length, f_min=config.f_min, f_max=config.f_max, n_mels=config.num_mels,
        power=1.0, center=False, norm="slaney", mel_scale="slaney",
    )
    ref = ta(torch.nn.functional.pad(x[:, None], (pad, pad), mode="reflect")[:, 0])
    ref = torch.log(ref.clamp(min=1e-5)) / math.log(config.log_base)
    ours = front(x)
    assert ours.shape == ref.shape
    # Only the 1e-9 inside MMAudio's magnitude sqrt differs.
    assert (ours - ref).abs().max() < 1e-3


@pytest.mark.parametrize("config", CONFIGS)
def test_tone_lands_in_its_band_and_inverts(config):
    front = LogMel(config)
    freq = 1000.0
    mel = front(_tone(freq, config.sample_rate, 0.25))
    fb = front.mel_basis
    bin_hz = torch.linspace(0, config.sample_rate / 2, config.n_fft // 2 + 1)
    centres = bin_hz[fb.argmax(dim=1)]
    loudest = int(mel.mean(-1).argmax())
    assert abs(float(centres[loudest]) - freq) < 2 * config.sample_rate / config.n_fft
    # Invertibility sanity: torchaudio's least-squares inverse of our mel recovers the tone's peak bin.
    inv = torchaudio.transforms.InverseMelScale(
        n_stft=config.n_fft // 2 + 1, n_mels=config.num_mels, sample_rate=config.sample_rate,
        f_min=config.f_min, f_max=config.f_max, norm="slaney", mel_scale="slaney",
    )
    linear = inv(torch.pow(config.log_base, mel))
    peak_hz = float(bin_hz[linear.mean(-1).argmax(dim=-1)].squeeze())
    assert abs(peak_hz - freq) < freq * 0.15
    # And the recovered spectrum re-projects onto the same mel (least squares is exact on the mel span).
    reproj = torch.log10(torch.clamp(fb @ linear, min=1e-5))
    direct = torch.log10(torch.pow(config.log_base, mel).clamp(min=1e-5))
    assert (reproj - direct)[..., :, :].abs().mean() < 0.05
