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


def _librosa_slaney_bank(sample_rate, n_fft, num_mels, f_min, f_max):
    """librosa.filters.mel's defaults (Slaney scale and norm) in float64: what MMAudio's front end uses."""
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, math.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp

    def to_mel(hz):
        return torch.where(hz >= min_log_hz, min_log_mel + torch.log(hz / min_log_hz) / logstep, hz / f_sp)

    def to_hz(mel):
        return torch.where(mel >= min_log_mel, min_log_hz * torch.exp(logstep * (mel - min_log_mel)), f_sp * mel)

    fft = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    lo, hi = to_mel(torch.tensor([f_min, f_max], dtype=torch.float64))
    edges = to_hz(torch.linspace(float(lo), float(hi), num_mels + 2, dtype=torch.float64))
    ramps = edges[:, None] - fft[None, :]
    widths = torch.diff(edges)
    weights = torch.clamp(torch.minimum(-ramps[:-2] / widths[:-1, None], ramps[2:] / widths[1:, None]), min=0.0)
    return weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]


@pytest.mark.parametrize("config", CONFIGS)
def test_filterbank_matches_librosa_slaney(config):
    # torchaudio's float32 bank (what mel_filterbank returns) against librosa's float64 formula.
    fb = mel_filterbank(config.sample_rate, config.n_fft, config.num_mels, config.f_min, config.f_max)
    ref = _librosa_slaney_bank(config.sample_rate, config.n_fft, config.num_mels, config.f_min, config.f_max)
    assert fb.shape == (config.num_mels, config.n_fft // 2 + 1) and fb.dtype == torch.float32
    assert (fb.double() - ref).abs().max() <= 2e-7
    # Every band is live and the band centres rise with the band index.
    assert bool((fb.sum(dim=1) > 0).all())
    assert bool((torch.diff(fb.argmax(dim=1)) >= 0).all())


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
    x = (torch.rand(1, config.hop_length * 20) * 2 - 1) * 0.9  # inside [-1, 1]: no clamping
    pad = (config.n_fft - config.hop_length) // 2
    padded = torch.nn.functional.pad(x[:, None], (pad, pad), mode="reflect")[:, 0]
    power = torchaudio.transforms.Spectrogram(
        n_fft=config.n_fft, win_length=config.win_length, hop_length=config.hop_length, power=2.0, center=False
    )(padded)
    to_mel = torchaudio.transforms.MelScale(
        n_mels=config.num_mels, sample_rate=config.sample_rate, f_min=config.f_min, f_max=config.f_max,
        n_stft=config.n_fft // 2 + 1, norm="slaney", mel_scale="slaney",
    )
    ref = to_mel(torch.sqrt(power + 1e-9))  # MMAudio's magnitude keeps 1e-9 under the sqrt
    ref = torch.log(ref.clamp(min=1e-5)) / math.log(config.log_base)
    ours = front(x)
    assert ours.shape == ref.shape
    assert (ours - ref).abs().max() < 1e-4


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


def test_prepare_waveform_downmixes_resamples_and_pads():
    from soundstage.models.common.codecs.mel import prepare_waveform

    rate = 8000
    stereo = torch.stack([_tone(500.0, rate, 0.2), -_tone(500.0, rate, 0.2) * 0.5])[None]  # [1, 2, T]
    out = prepare_waveform(stereo, rate, MEL_16K, multiple=2)
    assert out.shape[0] == 1 and out.shape[-1] % (2 * MEL_16K.hop_length) == 0
    assert out.shape[-1] >= 2 * stereo.shape[-1]
    # Mono mix of 0.5 sin and -0.25 sin is 0.125 sin; resampling keeps a 500 Hz tone's level.
    assert abs(float(out[0, 1000:2000].abs().max()) - 0.125) < 0.005
    assert torch.count_nonzero(out[0, 2 * stereo.shape[-1] + 8 :]) == 0
    same = prepare_waveform(torch.zeros(2, 16000), 16000, MEL_16K)
    assert same.shape == (2, 16000 + (-16000) % 256)
