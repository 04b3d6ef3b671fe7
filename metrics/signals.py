"""Envelopes, peaks and correlation helpers shared by the metrics."""
from __future__ import annotations

import numpy as np


def to_mono(wave) -> np.ndarray:
    """AUDIO waveform ``[B,C,T]`` / ``[C,T]`` tensor or array -> float64 mono ``[T]`` (first item)."""
    w = wave.detach().cpu().numpy() if hasattr(wave, "detach") else np.asarray(wave)
    while w.ndim > 2:
        w = w[0]
    if w.ndim == 2:
        w = w.mean(axis=0)
    return w.astype(np.float64)


def rms_envelope(wave: np.ndarray, sample_rate: int, rate: float, *, n: int | None = None) -> np.ndarray:
    """RMS per window of ``1/rate`` seconds (one value per video frame when ``rate`` is the fps)."""
    hop = sample_rate / rate
    n = int(np.floor(len(wave) / hop)) if n is None else n
    out = np.zeros(n)
    for i in range(n):
        seg = wave[int(i * hop): int((i + 1) * hop)]
        out[i] = np.sqrt(np.mean(seg * seg)) if seg.size else 0.0
    return out


def onset_strength(wave: np.ndarray, sample_rate: int, rate: float) -> np.ndarray:
    """Positive change of log energy per frame: peaks where sounds start."""
    env = np.log(rms_envelope(wave, sample_rate, rate) + 1e-5)
    return np.maximum(0.0, np.diff(env, prepend=env[:1]))


def robust_peaks(series: np.ndarray, *, z: float = 3.0, distance: int = 3) -> np.ndarray:
    """Local maxima standing ``z`` robust deviations (MAD) above the median: outliers of a series
    whose baseline is noisy, where a fraction-of-maximum threshold lets one huge event hide the rest."""
    from scipy.signal import find_peaks

    if series.size < 3:
        return np.zeros(0, int)
    med = float(np.median(series))
    mad = float(np.median(np.abs(series - med))) * 1.4826 + 1e-9
    idx, _ = find_peaks(series, height=med + z * mad, distance=distance)
    return idx


def zscore(x: np.ndarray) -> np.ndarray:
    s = x.std()
    return (x - x.mean()) / s if s > 1e-12 else np.zeros_like(x)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    if n < 2:
        return float("nan")
    a, b = a[:n], b[:n]
    if a.std() < 1e-12 or b.std() < 1e-12:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def lagged_correlation(a: np.ndarray, b: np.ndarray, max_lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Pearson correlation of ``a[t]`` with ``b[t+lag]`` for lag in -max_lag..max_lag."""
    lags = np.arange(-max_lag, max_lag + 1)
    out = np.zeros(len(lags))
    for i, lag in enumerate(lags):
        if lag >= 0:
            x, y = a[: len(a) - lag], b[lag:]
        else:
            x, y = a[-lag:], b[: len(b) + lag]
        out[i] = pearson(x, y)
    return lags, out
