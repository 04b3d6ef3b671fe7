"""A caption per clip that says what is seen and heard, built from the clip's own ground truth."""
from __future__ import annotations

COLOUR_NAMES = {(220, 50, 50): "red", (60, 200, 90): "green", (240, 160, 30): "orange"}
NUMBERS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}
LANGUAGE_NAMES = {"en": "English", "fr": "French", "de": "German"}


def _balls(colours: list[str]) -> str:
    if not colours:
        return ""
    if len(set(colours)) == 1:
        n = len(colours)
        return f"a {colours[0]} ball bounces" if n == 1 else f"{NUMBERS.get(n, n)} {colours[0]} balls bounce"
    named = [f"a {c} ball" for c in colours]
    return ", ".join(named[:-1]) + f" and {named[-1]} bounce"


def caption(*, ball_colours: list[str], beeps: int, speaker_gender: str | None, transcript: str,
            language: str, mood: float | None, tune: str | None = None) -> str:
    """E.g. ``a red ball and a green ball bounce, a lamp blinks with a beep, while a woman says in French:
    "..." over calm music``, or ``... while a man sings to the rising tune: "..."``. Every part is present
    exactly when the clip has it."""
    parts = [p for p in (_balls(ball_colours), "a lamp blinks with a beep" if beeps else "") if p]
    text = ", ".join(parts) if parts else "an empty room"
    if transcript:
        who = {"f": "a woman", "m": "a man"}.get(speaker_gender or "", "someone")
        lang = "" if language == "en" else f" in {LANGUAGE_NAMES.get(language, language)}"
        says = f"sings{lang} to the {tune} tune" if tune else f"says{lang}"
        text += f", while {who} {says}: \"{transcript}\""
    if mood is not None:
        text += " over " + ("cheerful" if mood >= 0.6 else "calm") + " music"
    return text


def colour_name(rgb: tuple[int, int, int]) -> str:
    return COLOUR_NAMES.get(tuple(rgb), "coloured")
