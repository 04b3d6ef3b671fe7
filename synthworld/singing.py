"""Sung words from espeak-ng: each word held near one note, for the world's song clips.

espeak-ng cannot sing and ignores SSML's pitch in Hz, but under ``<prosody range="x-low">`` its intonation flattens
to a near-monotone whose level ``-p`` sets. A calibration per voice variant (``-p`` against the measured median f0
of a sung syllable) maps a note to its ``-p``; only the part of the range where the voice stays voiced and rises
with ``-p`` is used (the male variants break into creak at low settings).
"""
from __future__ import annotations

import functools

import numpy as np

from .speech import ESPEAK_RATE, SPEAKERS, SpeechUnavailable, espeak_wave

CALIBRATION_TEXT = "la la la"
CALIBRATION_PARAMS = tuple(range(99, -1, -9))  # 99, 90, ..., 0
MAX_SPREAD_SEMITONES = 1.0  # a setting whose syllables wander further than this (90th percentile) is not used
# notes are sung in the top octave of the calibrated range: lower down, words drift up to 0.7 semitones from the
# calibration syllable's pitch (m7 at 75 Hz), in the top octave within 0.25
SINGING_OCTAVES = 1.0
# words are sung this much faster than the voice speaks them, so most fit a beat of song.SONG_BPM
SUNG_SPEED = 1.6


def _render(text: str, language: str, variant: str, pitch: int, speed: int) -> np.ndarray:
    ssml = f'<speak><prosody range="x-low">{text}</prosody></speak>'
    return espeak_wave(["-v", f"{language}+{variant}", "-p", str(pitch), "-s", str(speed), "-m"], ssml)


@functools.lru_cache(maxsize=16)
def pitch_curve(variant: str) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """(``-p`` settings, median f0 Hz), rising, over the usable part of ``variant``'s range: from the top setting
    down for as long as the sung syllables stay voiced, steady and lower than the setting above."""
    from ..metrics.pitch import semitones, track_f0

    params, hz = [], []
    for p in CALIBRATION_PARAMS:
        _, f0 = track_f0(_render(CALIBRATION_TEXT, "en", variant, p, 140), ESPEAK_RATE)
        f0 = f0[np.isfinite(f0)]
        if f0.size < 10:
            break
        median = float(np.median(f0))
        if np.percentile(np.abs(semitones(f0, median)), 90) > MAX_SPREAD_SEMITONES or (hz and median >= hz[-1]):
            break
        params.append(p)
        hz.append(median)
    if len(params) < 2:
        raise SpeechUnavailable(f"espeak-ng variant {variant!r} holds no steady sung pitch")
    return tuple(params[::-1]), tuple(hz[::-1])


def sung_range(speaker: str) -> tuple[float, float]:
    """Lowest and highest note (Hz) ``speaker`` sings steadily and in tune."""
    _, hz = pitch_curve(SPEAKERS[speaker][0])
    return max(hz[0], hz[-1] / 2 ** SINGING_OCTAVES), hz[-1]


def pitch_setting(speaker: str, hz: float) -> int:
    """The ``-p`` that sings ``hz`` in ``speaker``'s voice (interpolated in log frequency)."""
    params, curve = pitch_curve(SPEAKERS[speaker][0])
    lo, hi = sung_range(speaker)
    if not lo * 0.97 <= hz <= hi * 1.03:
        raise ValueError(f"{speaker} sings {lo:.0f}-{hi:.0f} Hz, not {hz:.0f} Hz")
    return int(round(np.interp(np.log(hz), np.log(curve), params)))


@functools.lru_cache(maxsize=8192)
def _sung(word: str, language: str, speaker: str, pitch: int) -> np.ndarray:
    variant, _, speed = SPEAKERS[speaker]
    return _render(word, language, variant, pitch, int(round(speed * SUNG_SPEED)))


def sing_word(word: str, language: str, speaker: str, hz: float) -> np.ndarray:
    """``word`` sung near ``hz`` in ``speaker``'s voice: float32 at ``speech.ESPEAK_RATE``, its voiced span."""
    return _sung(word, language, speaker, pitch_setting(speaker, hz)).copy()


__all__ = ["pitch_curve", "pitch_setting", "sing_word", "sung_range"]
