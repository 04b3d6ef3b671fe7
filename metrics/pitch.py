"""Fundamental frequency of a voice, and how closely it follows a melody.

The tracker is YIN (de Cheveigne and Kawahara, JASA 2002): per frame, the cumulative-mean-normalised difference
function, the first lag under an absolute threshold (its local minimum, refined by a parabola), and a frame left
unvoiced when no lag gets under it or the frame is quiet. Melody accuracy is the song target's measure: the share
of voiced frames inside the notes whose pitch is within a tolerance (in semitones) of the note's.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

F0_MIN, F0_MAX = 60.0, 600.0
FRAME_S, HOP_S = 0.04, 0.01
THRESHOLD = 0.15  # YIN's absolute threshold (the paper's 0.1 to 0.15)
QUIET_DB = -40.0  # frames this far under the loudest are unvoiced


@dataclass(frozen=True)
class Note:
    start: float  # seconds
    end: float
    hz: float


def _difference(frames: np.ndarray, max_lag: int) -> np.ndarray:
    """YIN's difference function d(tau) for tau in 0..max_lag-1 of each frame [N, W] (window W - max_lag)."""
    n, width = frames.shape
    w = width - max_lag
    size = 1 << int(np.ceil(np.log2(width + w)))
    spec = np.fft.rfft(frames, size)
    head = np.fft.rfft(frames[:, :w], size)
    cross = np.fft.irfft(spec * np.conj(head), size)[:, :max_lag]  # sum_j x_j x_{j+tau}, j < w
    energy = np.cumsum(np.concatenate([np.zeros((n, 1)), frames ** 2], axis=1), axis=1)
    head_energy = energy[:, w:w + 1]  # sum_{j<w} x_j^2
    lag_energy = energy[:, w:w + max_lag] - energy[:, :max_lag]  # sum_{j<w} x_{j+tau}^2
    return np.maximum(head_energy + lag_energy - 2 * cross, 0.0)


def track_f0(wave: np.ndarray, sample_rate: int, *, f0_min: float = F0_MIN, f0_max: float = F0_MAX,
             threshold: float = THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """(times s [F], f0 Hz [F]) every HOP_S; f0 is NaN on unvoiced frames. Frame t is centred at its time."""
    x = np.asarray(wave, np.float64)
    max_lag = int(np.ceil(sample_rate / f0_min)) + 2
    min_lag = int(np.floor(sample_rate / f0_max))
    hop = int(round(HOP_S * sample_rate))
    width = max(int(round(FRAME_S * sample_rate)), 2 * max_lag)
    if x.size < width:
        return np.zeros(0), np.zeros(0)
    starts = np.arange(0, x.size - width + 1, hop)
    frames = np.stack([x[s: s + width] for s in starts])
    d = _difference(frames, max_lag)
    cmnd = np.ones_like(d)
    cmnd[:, 1:] = d[:, 1:] * np.arange(1, max_lag) / np.maximum(np.cumsum(d[:, 1:], axis=1), 1e-12)
    rms = np.sqrt((frames ** 2).mean(axis=1))
    loud = 20 * np.log10(rms / max(rms.max(), 1e-12) + 1e-12) > QUIET_DB
    f0 = np.full(len(starts), np.nan)
    for i in np.flatnonzero(loud):
        row = cmnd[i]
        below = np.flatnonzero(row[min_lag:] < threshold)
        if not below.size:
            continue
        tau = min_lag + below[0]
        while tau + 1 < max_lag and row[tau + 1] < row[tau]:  # down to the local minimum
            tau += 1
        a, b, c = row[tau - 1], row[tau], row[tau + 1] if tau + 1 < max_lag else row[tau]
        shift = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) > 0 else 0.0
        f0[i] = sample_rate / (tau + shift)
    times = (starts + width / 2) / sample_rate
    return times, f0


def semitones(f: np.ndarray | float, ref: np.ndarray | float) -> np.ndarray:
    return 12.0 * np.log2(np.asarray(f, np.float64) / np.asarray(ref, np.float64))


def melody_accuracy(times: np.ndarray, f0: np.ndarray, notes: list[Note], *, tolerance: float = 1.0) -> dict:
    """Over the voiced frames inside the notes: the share within ``tolerance`` semitones of the note, the median
    absolute deviation in semitones, and the share of the notes' frames that are voiced at all."""
    inside = np.zeros(times.size, bool)
    target = np.full(times.size, np.nan)
    for n in notes:
        sel = (times >= n.start) & (times < n.end)
        inside |= sel
        target[sel] = n.hz
    voiced = inside & np.isfinite(f0)
    if not voiced.any():
        return {"frames": int(inside.sum()), "voiced_share": 0.0, "within_share": 0.0, "median_abs_semitones": None}
    dev = np.abs(semitones(f0[voiced], target[voiced]))
    return {"frames": int(inside.sum()), "voiced_share": round(float(voiced.sum() / inside.sum()), 3),
            "within_share": round(float(np.mean(dev <= tolerance)), 3),
            "median_abs_semitones": round(float(np.median(dev)), 3)}


__all__ = ["Note", "melody_accuracy", "semitones", "track_f0"]
