"""Effects and music synthesis."""
from __future__ import annotations

import numpy as np

from .scene import Music


def place(track: np.ndarray, sound: np.ndarray, at: float, sample_rate: int) -> None:
    i = int(round(at * sample_rate))
    if i >= len(track):
        return
    n = min(len(sound), len(track) - i)
    track[i: i + n] += sound[:n]


def impact(sample_rate: int, rng: np.random.Generator, size: float = 1.0) -> np.ndarray:
    """A thud: a decaying low sine plus a short noise burst; onset is sample 0 by construction."""
    n = int(0.18 * sample_rate)
    t = np.arange(n) / sample_rate
    body = np.sin(2 * np.pi * (90 + 60 / size) * t) * np.exp(-t * 28)
    click = rng.standard_normal(n) * np.exp(-t * 90)
    return (0.6 * body + 0.35 * click).astype(np.float32)


def beep(sample_rate: int, freq: float = 1000.0, seconds: float = 0.08) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.005)
    return (0.35 * np.sin(2 * np.pi * freq * t) * ramp).astype(np.float32)


def music_track(music: Music, seconds: float, sample_rate: int) -> tuple[np.ndarray, list[float]]:
    """Chords per bar plus a kick on every beat; returns the wave and the beat times."""
    n = int(seconds * sample_rate)
    out = np.zeros(n, np.float32)
    beat = 60.0 / music.bpm
    bar = 4 * beat
    t = np.arange(n) / sample_rate
    for k, chord in enumerate(music.chords):
        a, b = k * bar, (k + 1) * bar
        sel = (t >= a) & (t < b)
        if not sel.any():
            break
        local = t[sel] - a
        env = np.minimum(1.0, local / 0.05) * np.exp(-local * 0.8)
        out[sel] += sum(0.06 * np.sin(2 * np.pi * f * t[sel]) for f in chord) * env
    beats = list(np.arange(0.0, seconds, beat))
    kt = np.arange(int(0.12 * sample_rate)) / sample_rate
    kick = (0.3 * np.sin(2 * np.pi * (50 + 80 * np.exp(-kt * 30)) * kt) * np.exp(-kt * 25)).astype(np.float32)
    for b in beats:
        place(out, kick, b, sample_rate)
    return out, [round(float(b), 4) for b in beats]
