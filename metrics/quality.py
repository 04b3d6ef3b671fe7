"""Audio quality proxies that need no model: spectral flatness and SNR against a known stem."""
from __future__ import annotations

import numpy as np


def spectral_flatness(wave: np.ndarray, *, n_fft: int = 1024) -> float:
    """Mean over frames of geometric/arithmetic mean of the power spectrum (1 = white noise, ~0 = tones)."""
    if len(wave) < n_fft:
        wave = np.pad(wave, (0, n_fft - len(wave)))
    frames = np.lib.stride_tricks.sliding_window_view(wave, n_fft)[:: n_fft // 2] * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2 + 1e-12
    loud = power.sum(-1) > 1e-6 * power.sum(-1).max()
    flat = np.exp(np.log(power).mean(-1)) / power.mean(-1)
    return float(flat[loud].mean()) if loud.any() else float("nan")


def snr_db(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Scale-invariant SNR of an estimate against the ground-truth stem."""
    n = min(len(estimate), len(reference))
    est, ref = estimate[:n] - estimate[:n].mean(), reference[:n] - reference[:n].mean()
    alpha = np.dot(est, ref) / (np.dot(ref, ref) + 1e-12)
    target = alpha * ref
    noise = est - target
    return float(10 * np.log10((np.dot(target, target) + 1e-12) / (np.dot(noise, noise) + 1e-12)))
