"""What happens in a clip, on a shared timeline: bounces, blinks, chords, head motion."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GRAVITY = 2.6  # frame heights per second^2: a drop from the top lasts about 0.9 s


@dataclass
class Ball:
    x0: float  # horizontal position (0..1 of the width)
    vx: float  # horizontal speed (widths per second)
    drop_height: float  # 0..1 above the floor
    radius: float  # in frame heights
    colour: tuple[int, int, int]
    restitution: float = 0.85
    hold: float = 0.0  # seconds the ball hangs still at its drop height before it falls


def ball_track(ball: Ball, times: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Heights above the floor and x positions at ``times``, and the exact contact times."""
    contacts, h = [], np.full_like(times, ball.drop_height)
    t0, v0, y0 = ball.hold, 0.0, ball.drop_height
    segments = []  # (start, y0, v0) of each ballistic arc
    t_end = float(times[-1]) + 1.0
    while t0 < t_end:
        # y(t) = y0 + v0 (t-t0) - g/2 (t-t0)^2 hits 0 at:
        tc = t0 + (v0 + np.sqrt(v0 * v0 + 2 * GRAVITY * y0)) / GRAVITY
        segments.append((t0, y0, v0, tc))
        contacts.append(float(tc))
        speed = GRAVITY * (tc - t0) - v0
        v0, y0, t0 = speed * ball.restitution, 0.0, tc
        if v0 < 0.05:
            break
    for (a, y, v, b) in segments:
        sel = (times >= a) & (times < b)
        dt = times[sel] - a
        h[sel] = y + v * dt - 0.5 * GRAVITY * dt * dt
    travel = ball.x0 + ball.vx * np.maximum(times - ball.hold, 0.0)
    x = travel % 1.0
    x = np.where((travel // 1.0) % 2 == 1, 1.0 - x, x)  # bounce off the side walls
    return np.clip(h, 0, None), x, [c for c in contacts if c <= times[-1]]


@dataclass
class Music:
    bpm: float
    chords: list[tuple[float, float, float]]  # root frequencies per bar (triads built on them)
    mood: list[float]  # per-bar brightness 0..1


def make_music(rng: np.random.Generator) -> Music:
    roots = [220.0, 246.9, 261.6, 293.7, 329.6, 349.2, 392.0]
    bars = [rng.choice(roots) for _ in range(8)]
    majorish = [float(rng.random() < 0.6) for _ in bars]
    chords = [(r, r * (1.26 if m else 1.19), r * 1.5) for r, m in zip(bars, majorish)]
    mood = [0.35 + 0.5 * m for m in majorish]
    return Music(bpm=float(rng.choice([90, 100, 120])), chords=chords, mood=mood)


def blink_times(rng: np.random.Generator, seconds: float, first: float | None = None) -> list[float]:
    """Lamp blinks: the first at ``first`` (default 0.4-0.8 s from ``rng``), then every 0.9-1.8 s."""
    t, out = 0.4 + rng.random() * 0.4, []
    if first is not None:
        t = first
    while t < seconds - 0.2:
        out.append(round(float(t), 3))
        t += 0.9 + rng.random() * 0.9
    return out


def head_pose(times: np.ndarray, rng: np.random.Generator, seconds: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Head x/y offsets (fractions of the width) and a profile flag per frame."""
    phase = rng.random(2) * 2 * np.pi
    dx = 0.04 * np.sin(2 * np.pi * 0.4 * times + phase[0])
    dy = 0.02 * np.sin(2 * np.pi * 0.7 * times + phase[1])
    profile = np.zeros(times.shape, bool)
    if seconds >= 2.5 and rng.random() < 0.7:  # an occasional profile view of ~0.5 s
        start = rng.uniform(0.3, seconds - 0.8)
        profile = (times >= start) & (times < start + 0.5)
    return dx, dy, profile
