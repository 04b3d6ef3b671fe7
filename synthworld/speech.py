"""Speech from espeak-ng with exact word times and viseme-classed phoneme times.

Each word is synthesised on its own and the words are joined with pauses (fixed, or drawn per clip and per
word: ``varied_timing``), so word boundaries are exact by construction; phonemes share their word's span in
proportion to their class (vowels last about twice as long as consonants).
"""
from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ESPEAK_RATE = 22050
WORD_GAP_S = 0.07  # the fixed rhythm: every word followed by this pause (ClipSpec.speech_timing "fixed")
# ClipSpec.speech_timing "varied": each clip draws its speech start and every pause between words
VARIED_START_S = (0.2, 1.2)
VARIED_GAP_S = (0.04, 0.35)
END_MARGIN_S = 0.1  # the last word ends at least this long before the clip does

# (language, line) pairs that say the same thing: the dubbing pairs.
LINES = {
    "en": [
        "the red ball bounces on the floor",
        "listen to the music in the room",
        "a small light blinks when it beeps",
        "we will meet again tomorrow morning",
    ],
    "fr": [
        "la balle rouge rebondit sur le sol",
        "écoute la musique dans la pièce",
        "une petite lumière clignote quand elle sonne",
        "nous nous reverrons demain matin",
    ],
    "de": [
        "der rote ball springt auf den boden",
        "hör die musik in dem raum",
        "ein kleines licht blinkt wenn es piept",
        "wir sehen uns morgen früh wieder",
    ],
}

# Voice variants of espeak-ng: a "speaker" is a variant + pitch + speed, usable in every language.
SPEAKERS = {
    "spk0": ("m3", 45, 150),
    "spk1": ("f2", 65, 160),
    "spk2": ("m7", 35, 140),
    "spk3": ("f4", 75, 170),
}


class SpeechUnavailable(RuntimeError):
    pass


@dataclass
class Speech:
    wave: np.ndarray  # float32 mono at the requested rate
    sample_rate: int
    words: list[tuple[str, float, float]]
    phonemes: list[tuple[str, float, float]]


def espeak_binary() -> str:
    exe = shutil.which("espeak-ng") or shutil.which("espeak")
    if exe is None:
        raise SpeechUnavailable("espeak-ng is not installed (Debian package 'espeak-ng')")
    return exe


def _voice(language: str, speaker: str) -> list[str]:
    variant, pitch, speed = SPEAKERS[speaker]
    return ["-v", f"{language}+{variant}", "-p", str(pitch), "-s", str(speed)]


def _synth_word(word: str, language: str, speaker: str) -> np.ndarray:
    return _espeak_word(word, language, speaker).copy()


# espeak-ng is deterministic, and the grammar's few hundred words recur in every clip: a data set of hundreds of
# clips spent most of its rendering time in these subprocesses
@functools.lru_cache(maxsize=8192)
def _espeak_word(word: str, language: str, speaker: str) -> np.ndarray:
    return espeak_wave(_voice(language, speaker), word)


def espeak_wave(options: list[str], text: str) -> np.ndarray:
    """espeak-ng's rendering of ``text`` with ``options`` (voice, pitch, speed...): float32 at ESPEAK_RATE, its
    voiced span only."""
    from ..media.audio_io import load_audio

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "w.wav"
        subprocess.run([espeak_binary(), *options, "-w", str(out), text], check=True, capture_output=True)
        tensor, rate = load_audio(str(out))
        wave = tensor[0].numpy().astype(np.float32)
    if rate != ESPEAK_RATE:
        raise SpeechUnavailable(f"unexpected espeak-ng sample rate {rate}")
    # espeak pads words with silence: trim it so word times are the voiced span
    voiced = np.flatnonzero(np.abs(wave) > 0.01)
    return wave[voiced[0]: voiced[-1] + 1] if voiced.size else wave[:0]


def phonemes_of(word: str, language: str) -> list[str]:
    """espeak-ng's phoneme mnemonics for one word, split into symbols."""
    return list(_espeak_phonemes(word, language))


@functools.lru_cache(maxsize=8192)
def _espeak_phonemes(word: str, language: str) -> tuple[str, ...]:
    out = subprocess.run([espeak_binary(), "-v", language, "-q", "-x", word],
                         check=True, capture_output=True, text=True).stdout
    return tuple(split_mnemonics(out.strip().replace("'", "").replace(",", "")))


def split_mnemonics(text: str) -> list[str]:
    symbols, i = [], 0
    for mark in " _-',":  # word gaps and stress marks are not phonemes
        text = text.replace(mark, "")
    while i < len(text):
        # two-character mnemonics first (aI, oU, O:, @L ...); digits/colons are length marks
        if i + 1 < len(text) and (text[i + 1] in ":~" or text[i: i + 2] in {"aI", "aU", "oU", "eI", "OI", "e@", "i@", "U@", "tS", "dZ"}):
            symbols.append(text[i: i + 2]); i += 2
        elif text[i].isdigit():
            i += 1
        else:
            symbols.append(text[i]); i += 1
    return symbols


def _resample(wave: np.ndarray, src: int, dst: int) -> np.ndarray:
    if src == dst:
        return wave
    import torch
    import torchaudio.functional as AF

    return AF.resample(torch.from_numpy(wave), src, dst).numpy().astype(np.float32)


@dataclass
class SpokenWord:
    text: str
    wave: np.ndarray  # at ESPEAK_RATE, the voiced span only
    symbols: list[str]  # its phonemes

    @property
    def seconds(self) -> float:
        return len(self.wave) / ESPEAK_RATE


def synth_words(text: str, language: str, speaker: str) -> list[SpokenWord]:
    """Each word of ``text`` synthesised on its own (so its span is exact), with its phonemes."""
    return [SpokenWord(word, _synth_word(word, language, speaker), phonemes_of(word, language) or ["@"])
            for word in text.split()]


def join_words(spoken: list[SpokenWord], sample_rate: int, *, start: float = 0.0,
               gaps: list[float] | None = None) -> Speech:
    """The words one after another from ``start``: ``gaps`` are the pauses between words (seconds, one fewer
    than the words, rounded to whole samples so the times are the wave's); without them every word is followed
    by ``WORD_GAP_S``, the world's fixed rhythm."""
    from .visemes import duration_weight

    if gaps is not None and len(gaps) != max(0, len(spoken) - 1):
        raise ValueError(f"{len(spoken)} words need {max(0, len(spoken) - 1)} gaps, got {len(gaps)}")
    pieces, words, phones = [], [], []
    t = start
    fixed_gap = np.zeros(int(WORD_GAP_S * ESPEAK_RATE), np.float32)
    for k, w in enumerate(spoken):
        dur = w.seconds
        words.append((w.text, t, t + dur))
        weights = np.array([duration_weight(s) for s in w.symbols], float)
        edges = t + dur * np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])
        phones += [(s, float(a), float(b)) for s, a, b in zip(w.symbols, edges[:-1], edges[1:])]
        if gaps is None:
            pieces += [w.wave, fixed_gap]
            t += dur + WORD_GAP_S
        else:
            gap = np.zeros(int(round(gaps[k] * ESPEAK_RATE)) if k < len(gaps) else 0, np.float32)
            pieces += [w.wave, gap]
            t += dur + len(gap) / ESPEAK_RATE
    wave = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    return Speech(_resample(wave, ESPEAK_RATE, sample_rate), sample_rate, words, phones)


def speak(text: str, language: str, speaker: str, sample_rate: int, *, start: float = 0.0,
          gaps: list[float] | None = None) -> Speech:
    return join_words(synth_words(text, language, speaker), sample_rate, start=start, gaps=gaps)


def varied_timing(rng: np.random.Generator, word_seconds: list[float],
                  clip_seconds: float) -> tuple[float, list[float]]:
    """A clip's own speech timing: a start in ``VARIED_START_S`` and a pause in ``VARIED_GAP_S`` between each two
    words, drawn from ``rng``, with the sentence kept inside the clip: when the drawn timing would end later than
    ``END_MARGIN_S`` before the clip's end, every draw above its minimum is scaled down alike (the sentence's
    rhythm keeps its shape); a sentence too long even at the minima starts at the minimum start with minimum
    pauses (its last words then run past the clip's end, as the fixed rhythm's would)."""
    (s0, s1), (g0, g1) = VARIED_START_S, VARIED_GAP_S
    n_gaps = max(0, len(word_seconds) - 1)
    extra_start = rng.uniform(0.0, s1 - s0)
    extra_gaps = rng.uniform(0.0, g1 - g0, n_gaps)
    room = clip_seconds - END_MARGIN_S - sum(word_seconds) - s0 - n_gaps * g0
    drawn = extra_start + float(extra_gaps.sum())
    scale = 1.0 if drawn <= room else max(0.0, room) / drawn
    return s0 + scale * extra_start, [g0 + scale * float(e) for e in extra_gaps]
