"""Known sound events against the onsets of generated audio (the tiny defaults' sync targets).

Each ground-truth event is matched to the nearest detected onset; an event with none within ``miss``
seconds counts as ``miss`` (issue target: median at most one 25 fps frame, 40 ms). Because nearest-onset
matching rewards audio full of onsets, the onset precision (share of detected onsets near some event)
is reported beside it.
"""
from __future__ import annotations

import numpy as np

from .signals import rms_envelope

ONSET_RATE = 200.0  # onset-strength frames per second (5 ms), as metrics.sync.onset_error
MISS_S = 0.2


MIN_RISE = np.log(10 ** (9 / 20))  # an onset raises the RMS envelope by at least 9 dB within RISE_S
RISE_S = 0.02
FLOOR_DB = -40.0  # and reaches within 40 dB of the clip's loudest frame (noise floors do not count)


def detect_onsets(wave: np.ndarray, sample_rate: int, *, rate: float = ONSET_RATE) -> np.ndarray:
    """Onset times in seconds: where the log RMS envelope rises by MIN_RISE within RISE_S to a level above
    the floor. Stricter than a plain robust peak of the energy change, so noise gets few onsets."""
    return envelope_onsets(np.log(rms_envelope(np.asarray(wave, np.float64), sample_rate, rate) + 1e-6), rate)


def envelope_onsets(env: np.ndarray, rate: float) -> np.ndarray:
    """Onsets (s) of a natural-log amplitude envelope sampled at ``rate`` Hz, by the same rise rule."""
    env = np.asarray(env, np.float64)
    if env.size < 3:
        return np.zeros(0)
    k = max(1, int(round(RISE_S * rate)))
    past = np.array([env[max(0, i - k): i].min() if i else env[0] for i in range(env.size)])
    rise = env - past
    loud = env >= env.max() + FLOOR_DB / 20 * np.log(10)
    rise[~loud | (rise < MIN_RISE)] = 0.0
    from scipy.signal import find_peaks

    idx = find_peaks(rise, height=1e-12, distance=max(1, int(0.05 * rate)))[0] if rise.max() > 0 else np.zeros(0, int)
    # the onset is where the rise starts: step back to the last frame of the quiet before it
    return np.array([i - int(np.argmin(env[max(0, i - k): i + 1][::-1])) for i in idx], float) / rate


def event_errors(onsets: np.ndarray, events: list[float], *, miss: float = MISS_S) -> list[float]:
    errors = []
    for t in events:
        near = np.abs(np.asarray(onsets) - t)
        errors.append(float(min(near.min(), miss)) if near.size else miss)
    return errors


def onset_precision(onsets: np.ndarray, events: list[float], *, tolerance: float = 0.1) -> float:
    if len(onsets) == 0:
        return float("nan")
    ev = np.asarray(events, float)
    return float(np.mean([bool(ev.size) and float(np.abs(ev - o).min()) <= tolerance for o in onsets]))


def event_sync(wave: np.ndarray, sample_rate: int, events: list[float], *, miss: float = MISS_S) -> dict:
    """Per-clip summary: every event's error (s), their median in ms, misses and onset precision."""
    return onset_summary(detect_onsets(wave, sample_rate), events, miss=miss)


def onset_summary(onsets: np.ndarray, events: list[float], *, miss: float = MISS_S) -> dict:
    errors = event_errors(onsets, events, miss=miss)
    return {"errors_s": errors, "median_ms": float(np.median(errors) * 1000) if errors else float("nan"),
            "misses": int(sum(e >= miss for e in errors)), "onsets": int(len(onsets)),
            "precision": onset_precision(onsets, events)}


def log10_mel_envelope(mel: np.ndarray) -> np.ndarray:
    """Natural-log amplitude per frame of a log10-magnitude mel [n_mels, F] (MMAudio's 16 kHz front end):
    lets the onset rule run on a decoded mel, before (and so independently of) the vocoder."""
    power = np.power(10.0, 2.0 * np.asarray(mel, np.float64)).sum(axis=0)
    return 0.5 * np.log(power + 1e-12)


def envelope_event_sync(env: np.ndarray, rate: float, events: list[float], *, miss: float = MISS_S) -> dict:
    return onset_summary(envelope_onsets(env, rate), events, miss=miss)
