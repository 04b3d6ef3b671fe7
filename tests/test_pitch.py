"""The f0 tracker (YIN) and the melody measure of metrics/pitch.py, on tones whose pitch is known."""
from __future__ import annotations

import numpy as np
import pytest

from soundstage.metrics.pitch import Note, melody_accuracy, semitones, track_f0

RATE = 16000


def _voice(f0: np.ndarray, rate: int = RATE, noise: float = 0.05, seed: int = 0) -> np.ndarray:
    """Harmonics falling 1/k on the instantaneous f0 [T], plus white noise."""
    phase = 2 * np.pi * np.cumsum(f0) / rate
    x = sum(np.sin(k * phase) / k for k in range(1, 9))
    return x + noise * np.random.default_rng(seed).standard_normal(f0.size)


@pytest.mark.parametrize("hz", [65.0, 110.0, 247.0, 440.0, 587.0])
def test_steady_tones_read_within_a_few_cents(hz):
    times, f0 = track_f0(_voice(np.full(RATE, hz)), RATE)
    assert np.isfinite(f0).all() and times.size > 90
    assert np.abs(semitones(f0, hz)).max() < 0.05  # 5 cents


def test_noise_and_silence_are_unvoiced():
    noise = np.random.default_rng(1).standard_normal(RATE)
    assert np.isnan(track_f0(noise, RATE)[1]).all()
    gap = np.concatenate([_voice(np.full(RATE // 2, 200.0)), np.zeros(RATE // 2)])
    times, f0 = track_f0(gap, RATE)
    assert np.isfinite(f0[times < 0.45]).all() and np.isnan(f0[times > 0.55]).all()


def test_melody_accuracy_counts_frames_inside_the_notes():
    # an octave glide over 1 s, scored against a note at its middle: deviations spread evenly over 0-6 semitones
    t = np.arange(RATE) / RATE
    times, f0 = track_f0(_voice(150 * 2 ** t), RATE)
    glide = melody_accuracy(times, f0, [Note(0.0, 1.0, 150 * 2 ** 0.5)], tolerance=1.0)
    assert glide["voiced_share"] > 0.95 and 0.1 < glide["within_share"] < 0.3
    assert glide["median_abs_semitones"] == pytest.approx(3.0, abs=0.3)
    # two held notes a fifth apart, each scored against its own note and then against the other's
    wave = _voice(np.where(t < 0.5, 200.0, 300.0))
    times, f0 = track_f0(wave, RATE)
    right = melody_accuracy(times, f0, [Note(0.05, 0.45, 200.0), Note(0.55, 0.95, 300.0)])
    swapped = melody_accuracy(times, f0, [Note(0.05, 0.45, 300.0), Note(0.55, 0.95, 200.0)])
    assert right["within_share"] == 1.0 and swapped["within_share"] == 0.0
    assert melody_accuracy(times, np.full_like(f0, np.nan), [Note(0, 1, 200.0)])["voiced_share"] == 0.0
