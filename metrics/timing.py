"""Timing fidelity for dubbing (JUST-DUB-IT 4): Int-Corr and Dur-Err."""
from __future__ import annotations

import numpy as np

from .signals import pearson, rms_envelope


def speech_span(wave: np.ndarray, sample_rate: int, *, threshold_db: float = -40.0, rate: float = 100.0) -> tuple[float, float]:
    """First and last time the RMS envelope is within ``threshold_db`` of its peak."""
    env = rms_envelope(wave, sample_rate, rate)
    if env.size and not np.isfinite(env).all():  # a diverged model's NaN/inf output has no span to measure
        return float("nan"), float("nan")
    if env.size == 0 or env.max() <= 0:
        return 0.0, 0.0
    active = np.flatnonzero(20 * np.log10(env / env.max() + 1e-12) > threshold_db)
    return float(active[0] / rate), float((active[-1] + 1) / rate)


def int_corr(pred: np.ndarray, ref: np.ndarray, sample_rate: int, *, rate: float = 50.0) -> float:
    """Pearson correlation of the two RMS intensity envelopes."""
    n = min(len(pred), len(ref))
    return pearson(rms_envelope(pred[:n], sample_rate, rate), rms_envelope(ref[:n], sample_rate, rate))


def dur_err(pred: np.ndarray, ref: np.ndarray, sample_rate: int) -> float:
    """Relative error of the active speech duration: |d_pred - d_ref| / d_ref."""
    a, b = speech_span(pred, sample_rate)
    c, d = speech_span(ref, sample_rate)
    ref_d = d - c
    return float(abs((b - a) - ref_d) / ref_d) if ref_d > 0 else float("nan")
