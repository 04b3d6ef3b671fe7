"""Pull a vocoder's waveform back onto the mel it was given.

A small vocoder draws the right phases but the wrong band energies (benchmarks/tiny_defaults_feasibility.md,
rounds 13-14: its log-mel is 0.16 from its input, and Whisper loses words with it). Each refinement step is one pair of
alternating projections, as in Griffin-Lim: scale every STFT bin so that each mel band carries the mel's energy
(keeping the waveform's phase and its fine structure inside a band), then return to a consistent STFT by an
inverse and forward transform. The STFT frames the waveform as MMAudio's front end does (``mel.LogMel``), so the
energies compared are the ones the mel describes.
"""
from __future__ import annotations

import torch

from .mel import LOG_FLOOR, MelConfig, mel_filterbank


def _band_weights(config: MelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The mel bank [M, K] and, per STFT bin, its bands' weights normalised to sum 1 [M, K] (0 where no band)."""
    bank = mel_filterbank(config.sample_rate, config.n_fft, config.num_mels, config.f_min, config.f_max)
    return bank, bank / bank.sum(0, keepdim=True).clamp_min(1e-12)


def refine_to_mel(wave: torch.Tensor, log_mel: torch.Tensor, config: MelConfig, steps: int) -> torch.Tensor:
    """``wave`` [B, 1, T] or [B, T] (the vocoder's output for ``log_mel`` [B, num_mels, F]) after ``steps`` passes
    that set its mel-band energies to the mel's; same shape and length. ``steps`` 0 returns ``wave`` unchanged."""
    if steps <= 0:
        return wave
    if log_mel.dim() != 3 or log_mel.shape[1] != config.num_mels or log_mel.shape[0] != wave.shape[0]:
        raise ValueError(f"mel refinement: mel must be [{wave.shape[0]}, {config.num_mels}, frames], "
                         f"got {tuple(log_mel.shape)}")
    shape, dtype = wave.shape, wave.dtype
    x = wave.reshape(shape[0], -1).float()
    n, hop, size = x.shape[-1], config.hop_length, config.n_fft
    pad = (size - hop) // 2  # MMAudio's framing (mel.LogMel): reflect pad, no centring
    if n <= pad:  # shorter than the front end's padding (a mel of one frame): no frame to compare, left as it is
        return wave
    window = torch.hann_window(config.win_length, device=x.device)
    if config.win_length < size:
        window = torch.nn.functional.pad(window, ((size - config.win_length) // 2, (size - config.win_length + 1) // 2))

    def stft(y: torch.Tensor) -> torch.Tensor:
        y = torch.nn.functional.pad(y[:, None], (pad, pad), mode="reflect")[:, 0]
        return torch.stft(y, size, hop, size, window, center=False, return_complex=True)

    spec = stft(x)
    frames = spec.shape[-1]
    length = (frames - 1) * hop + size
    fold = lambda f: torch.nn.functional.fold(f, (1, length), (1, size), stride=(1, hop))[:, 0, 0]
    envelope = fold((window ** 2)[None, :, None].expand(1, size, frames)).clamp_min(1e-8)

    def istft(spec: torch.Tensor) -> torch.Tensor:
        # weighted overlap-add (torch.istft refuses uncentred frames: the window is 0 at the padded ends)
        return (fold(torch.fft.irfft(spec, n=size, dim=1) * window[:, None]) / envelope)[:, pad: pad + n]

    target = config.log_base ** log_mel.float().to(x.device)[..., :frames]
    if target.shape[-1] < frames:  # a waveform longer than the mel: hold the last frame's energies
        target = torch.cat([target, target[..., -1:].expand(*target.shape[:-1], frames - target.shape[-1])], -1)
    target = target.clamp_min(LOG_FLOOR)
    bank, weights = (t.to(x.device) for t in _band_weights(config))
    y = x
    for step in range(steps):
        y = istft(spec * (weights.T @ (target / (bank @ spec.abs()).clamp_min(LOG_FLOOR))))
        if step + 1 < steps:
            spec = stft(y)
    return y.reshape(shape).to(dtype)


__all__ = ["refine_to_mel"]
