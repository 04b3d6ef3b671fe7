"""Song clips: the drawn face sings its sentence, a word on each beat, to one of the world's named tunes.

A tune is a line of scale steps (semitones above the singer's tonic, the bottom of the octave the voice sings in
tune, ``singing.sung_range``), one per beat at ``SONG_BPM``. A word starts on a beat and is held on that beat's
note; a word longer than a beat takes the next beat too, and the tune moves on with the beats. The caption names
the tune, so a model is given the melody through its text; the music under the song plays the tune's chords.
"""
from __future__ import annotations

import math

import numpy as np

from .scene import Music
from .speech import ESPEAK_RATE, Speech, SpokenWord, join_words, phonemes_of

SONG_BPM = 150.0  # a beat of 0.4 s: the grammar's longest sentences (8 words) fit a 4 s clip
SONG_START_BEAT = 1  # the first word on the second beat (0.4 s), near the spoken clips' 0.3 s
TUNES = {  # semitones above the tonic, one per beat (major scale steps; the line repeats)
    "rising": (0, 2, 4, 5, 7, 9, 11, 12, 9, 7, 4, 2),
    "falling": (12, 11, 9, 7, 5, 4, 2, 0, 4, 7, 9, 11),
    "leaping": (0, 7, 4, 12, 7, 4, 0, 7, 12, 4, 7, 0),
}
CHEERFUL = 0.85  # the song's music mood per bar (scene.make_music's major bars)


def beat_seconds() -> float:
    return 60.0 / SONG_BPM


def draw_tune(seed: int) -> str:
    """The clip's tune, from its own generator (seed, 3): the rest of the clip is drawn as without it."""
    return sorted(TUNES)[int(np.random.default_rng([seed, 3]).integers(len(TUNES)))]


def tonic(speaker: str) -> float:
    from .singing import sung_range

    return sung_range(speaker)[0]


def note_hz(tune: str, speaker: str, beat: int) -> float:
    steps = TUNES[tune]
    return tonic(speaker) * 2.0 ** (steps[beat % len(steps)] / 12.0)


def sing(text: str, language: str, speaker: str, sample_rate: int, tune: str) -> tuple[Speech, float]:
    """``text`` sung to ``tune``: the Speech (wave, word and phoneme times) and its start (s)."""
    from .singing import sing_word

    if tune not in TUNES:
        raise ValueError(f"tune must be one of {sorted(TUNES)}, got {tune!r}")
    beat = beat_seconds()
    spoken, gaps, at = [], [], SONG_START_BEAT
    for k, word in enumerate(text.split()):
        wave = sing_word(word, language, speaker, note_hz(tune, speaker, at - SONG_START_BEAT))
        spoken.append(SpokenWord(word, wave, phonemes_of(word, language) or ["@"]))
        held = max(1, math.ceil(len(wave) / ESPEAK_RATE / beat))  # beats the word takes
        if k:
            gaps.append(at * beat - ends)
        ends = at * beat + len(wave) / ESPEAK_RATE
        at += held
    start = SONG_START_BEAT * beat
    return join_words(spoken, sample_rate, start=start, gaps=gaps), start


def notes(words: list[tuple[str, float, float]], tune: str, speaker: str) -> list[dict]:
    """Each sung word's note: its span and the pitch of the beat it starts on (the clip's melody truth)."""
    beat = beat_seconds()
    out = []
    for word, a, b in words:
        k = int(round(a / beat)) - SONG_START_BEAT
        out.append({"word": word, "start": a, "end": b, "hz": round(note_hz(tune, speaker, k), 3)})
    return out


def accompaniment(tune: str, speaker: str, seconds: float) -> Music:
    """The song's music: a bar's chord is the major triad, an octave under the singer, on the note sung on the bar's
    first beat (bars from 0 s, so a chord begins one beat before its note)."""
    bars = math.ceil(seconds / (4 * beat_seconds()))
    roots = [note_hz(tune, speaker, max(0, 4 * k - SONG_START_BEAT)) / 2 for k in range(bars)]
    return Music(bpm=SONG_BPM, chords=[(r, r * 1.26, r * 1.5) for r in roots], mood=[CHEERFUL] * bars)


__all__ = ["SONG_BPM", "TUNES", "accompaniment", "beat_seconds", "draw_tune", "notes", "sing"]
