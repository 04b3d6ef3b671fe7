"""Phoneme classes -> mouth shapes. Openness is 0 (closed lips) .. 1 (wide open)."""
from __future__ import annotations

OPEN_VOWELS = set("aA&V") | {"a:", "A:", "aI", "aU", "a~"}
MID_VOWELS = set("eE@3") | {"e:", "E:", "eI", "e@", "E~", "3:", "@L"}
CLOSE_VOWELS = set("iIy") | {"i:", "i@", "y:"}
ROUND_VOWELS = set("oOuUY02") | {"o:", "O:", "u:", "oU", "OI", "U@", "O~", "o~", "W"}
BILABIAL = set("pbmw")
LABIODENTAL = set("fv")

VISEMES = {
    "open": 1.0,
    "mid": 0.65,
    "round": 0.55,
    "close": 0.4,
    "consonant": 0.25,
    "labiodental": 0.12,
    "bilabial": 0.0,
}


def viseme(symbol: str) -> str:
    if symbol in OPEN_VOWELS:
        return "open"
    if symbol in MID_VOWELS:
        return "mid"
    if symbol in ROUND_VOWELS:
        return "round"
    if symbol in CLOSE_VOWELS:
        return "close"
    if symbol in BILABIAL:
        return "bilabial"
    if symbol in LABIODENTAL:
        return "labiodental"
    return "consonant"


def is_vowel(symbol: str) -> bool:
    return viseme(symbol) in ("open", "mid", "round", "close")


def duration_weight(symbol: str) -> float:
    return 2.0 if is_vowel(symbol) else 1.0


def openness_track(phonemes: list[tuple[str, float, float]], n_frames: int, fps: float) -> list[float]:
    """Per-frame mouth openness: the viseme at each frame's centre time, closed between words."""
    track = [0.0] * n_frames
    for sym, a, b in phonemes:
        value = VISEMES[viseme(sym)]
        first = max(0, int(a * fps + 0.5))
        last = min(n_frames, int(b * fps + 0.5))
        for f in range(first, last):
            track[f] = value
    return track
