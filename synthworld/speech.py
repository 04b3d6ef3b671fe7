"""Speech from espeak-ng with exact word times and viseme-classed phoneme times.

Each word is synthesised on its own and the words are joined with short pauses, so word
boundaries are exact by construction; phonemes share their word's span in proportion to their
class (vowels last about twice as long as consonants).
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ESPEAK_RATE = 22050
WORD_GAP_S = 0.07

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
    from ..media.audio_io import load_audio

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "w.wav"
        subprocess.run([espeak_binary(), *_voice(language, speaker), "-w", str(out), word],
                       check=True, capture_output=True)
        tensor, rate = load_audio(str(out))
        wave = tensor[0].numpy().astype(np.float32)
    if rate != ESPEAK_RATE:
        raise SpeechUnavailable(f"unexpected espeak-ng sample rate {rate}")
    # espeak pads words with silence: trim it so word times are the voiced span
    voiced = np.flatnonzero(np.abs(wave) > 0.01)
    return wave[voiced[0]: voiced[-1] + 1] if voiced.size else wave[:0]


def phonemes_of(word: str, language: str) -> list[str]:
    """espeak-ng's phoneme mnemonics for one word, split into symbols."""
    out = subprocess.run([espeak_binary(), "-v", language, "-q", "-x", word],
                         check=True, capture_output=True, text=True).stdout
    return split_mnemonics(out.strip().replace("'", "").replace(",", ""))


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


def speak(text: str, language: str, speaker: str, sample_rate: int, *, start: float = 0.0) -> Speech:
    from .visemes import duration_weight

    pieces, words, phones = [], [], []
    t = start
    gap = np.zeros(int(WORD_GAP_S * ESPEAK_RATE), np.float32)
    for word in text.split():
        w = _synth_word(word, language, speaker)
        dur = len(w) / ESPEAK_RATE
        words.append((word, t, t + dur))
        symbols = phonemes_of(word, language) or ["@"]
        weights = np.array([duration_weight(s) for s in symbols], float)
        edges = t + dur * np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])
        phones += [(s, float(a), float(b)) for s, a, b in zip(symbols, edges[:-1], edges[1:])]
        pieces += [w, gap]
        t += dur + WORD_GAP_S
    wave = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    return Speech(_resample(wave, ESPEAK_RATE, sample_rate), sample_rate, words, phones)
