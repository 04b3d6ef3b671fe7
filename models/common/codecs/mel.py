"""Log-mel front ends of the MMAudio VAEs (and so of AudioGen-Omni and Ovi audio latents).

Both follow MMAudio ``ext/mel_converter.py``: clamp to [-1, 1], reflect-pad (n_fft - hop) / 2 on
each side, STFT without centring, magnitude sqrt(re^2 + im^2 + 1e-9), a librosa (Slaney) mel
filterbank, then log of the magnitude clamped at 1e-5. So a clip of N samples gives N // hop frames.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class MelConfig:
    sample_rate: int
    n_fft: int
    num_mels: int
    hop_length: int
    win_length: int
    f_min: float
    f_max: float
    log_base: float  # 10 for the 16 kHz VAE, e for the 44.1 kHz one

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length


# MMAudio get_mel_converter('16k'): the front end of v1-16.pth, which Ovi also uses.
MEL_16K = MelConfig(16_000, 1024, 80, 256, 1024, 0.0, 8_000.0, 10.0)
# MMAudio get_mel_converter('44k'): the front end of v1-44.pth.
MEL_44K = MelConfig(44_100, 2048, 128, 512, 2048, 0.0, 44_100 / 2, math.e)

MAGNITUDE_EPS = 1e-9  # inside the sqrt of the STFT magnitude, as in MMAudio
LOG_FLOOR = 1e-5  # dynamic_range_compression clip value


def mel_filterbank(sample_rate: int, n_fft: int, num_mels: int, f_min: float, f_max: float) -> torch.Tensor:
    """[num_mels, n_fft//2+1] Slaney-scale, Slaney-normalised triangles: ``librosa.filters.mel``'s
    defaults, which MMAudio's front end uses (torchaudio's; within 1.2e-7 of librosa's float64 bank)."""
    import torchaudio.functional as AF

    return AF.melscale_fbanks(n_fft // 2 + 1, f_min, f_max, num_mels, sample_rate, norm="slaney",
                              mel_scale="slaney").T.contiguous()


class LogMel(nn.Module):
    """Waveform [B, T] or [T] in [-1, 1] -> log-mel [B, num_mels, T // hop]."""

    def __init__(self, config: MelConfig = MEL_16K):
        super().__init__()
        self.config = config
        c = config
        # Derived from the config, never from a file: not part of any state dict.
        self.register_buffer("mel_basis", mel_filterbank(c.sample_rate, c.n_fft, c.num_mels, c.f_min, c.f_max), persistent=False)
        self.register_buffer("window", torch.hann_window(c.win_length), persistent=False)

    def magnitude(self, waveform: torch.Tensor) -> torch.Tensor:
        """Linear STFT magnitude [B, n_fft//2+1, T // hop] on MMAudio's framing."""
        c = self.config
        x = waveform.float().clamp(-1.0, 1.0)
        if x.dim() == 1:
            x = x[None]
        pad = (c.n_fft - c.hop_length) // 2
        if x.shape[-1] <= pad:
            raise ValueError(f"audio too short for the mel front end: {x.shape[-1]} samples, need more than {pad}")
        x = F.pad(x[:, None], (pad, pad), mode="reflect")[:, 0]
        spec = torch.stft(
            x, c.n_fft, hop_length=c.hop_length, win_length=c.win_length, window=self.window.to(x.device),
            center=False, normalized=False, onesided=True, return_complex=True,
        )
        return torch.sqrt(torch.view_as_real(spec).pow(2).sum(-1) + MAGNITUDE_EPS)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        mel = torch.matmul(self.mel_basis.to(waveform.device), self.magnitude(waveform))
        return torch.log(mel.clamp(min=LOG_FLOOR)) / math.log(self.config.log_base)

    def num_frames(self, num_samples: int) -> int:
        return num_samples // self.config.hop_length


def prepare_waveform(waveform: torch.Tensor, sample_rate: int, config: MelConfig, multiple: int = 1) -> torch.Tensor:
    """Audio [B, C, T] or [B, T] at any rate -> mono [B, T'] at the front end's rate.

    Channels are averaged (MMAudio's VAEs are mono), the audio is resampled, and it is zero-padded
    at the end to a whole number of ``multiple`` hops so every mel frame (and, with multiple 2,
    every VAE latent frame) covers real audio.
    """
    x = waveform.float()
    if x.dim() == 3:
        x = x.mean(dim=1)
    if x.dim() != 2:
        raise ValueError(f"expected audio [B, C, T] or [B, T], got shape {tuple(waveform.shape)}")
    if sample_rate != config.sample_rate:
        import torchaudio

        x = torchaudio.functional.resample(x, sample_rate, config.sample_rate)
    step = config.hop_length * multiple
    extra = (-x.shape[-1]) % step
    return F.pad(x, (0, extra)) if extra else x


def mel_config_for(num_mels: int) -> MelConfig:
    """The front end that pairs with a VAE or vocoder of ``num_mels`` bands."""
    for config in (MEL_16K, MEL_44K):
        if config.num_mels == num_mels:
            return config
    raise ValueError(f"no MMAudio mel front end has {num_mels} mel bands (known: 80 at 16 kHz, 128 at 44.1 kHz)")


__all__ = ["LogMel", "MelConfig", "MEL_16K", "MEL_44K", "mel_config_for", "mel_filterbank", "prepare_waveform"]
