"""Sentences of the synthetic world from a small grammar, the same sentence in English, French and German.

``NAME VERB the COLOUR NOUN TIME``: 8 names x 6 verbs x 8 nouns x 4 colours x 5 times = 7680 sentences per
language. Sentence ``i`` means the same thing in every language (the dubbing pairs). A fixed permutation
spreads the grammar's combinations over the ids, and every tenth id (``i % 10 == 9``) is held out: those
sentences never appear in training clips, so speech and transcript metrics can be taken on unseen lines.
The vocabulary is the same in both parts; only the combinations are new.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

LANGUAGES = ("en", "fr", "de")
HELD_OUT_EVERY = 10  # sentence id i is held out when i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1
PERMUTATION_SEED = 20261205  # fixed forever: changing it would reshuffle the train/held-out sentences

NAMES = ("anna", "paul", "marie", "tom", "lena", "max", "sophie", "leo")
# verb (third person singular present) per language
VERBS = (
    {"en": "sees", "fr": "voit", "de": "sieht"},
    {"en": "paints", "fr": "peint", "de": "malt"},
    {"en": "finds", "fr": "trouve", "de": "findet"},
    {"en": "likes", "fr": "aime", "de": "mag"},
    {"en": "carries", "fr": "porte", "de": "trägt"},
    {"en": "buys", "fr": "achète", "de": "kauft"},
)
# noun per language with its grammatical gender (fr: m/f, de: m/f/n)
NOUNS = (
    {"en": "ball", "fr": ("balle", "f"), "de": ("ball", "m")},
    {"en": "lamp", "fr": ("lampe", "f"), "de": ("lampe", "f")},
    {"en": "house", "fr": ("maison", "f"), "de": ("haus", "n")},
    {"en": "book", "fr": ("livre", "m"), "de": ("buch", "n")},
    {"en": "car", "fr": ("voiture", "f"), "de": ("auto", "n")},
    {"en": "hat", "fr": ("chapeau", "m"), "de": ("hut", "m")},
    {"en": "cup", "fr": ("tasse", "f"), "de": ("tasse", "f")},
    {"en": "box", "fr": ("boîte", "f"), "de": ("kiste", "f")},
)
# colour: en, fr masculine/feminine, de stem (weak declension after the definite article)
COLOURS = (
    {"en": "red", "fr": ("rouge", "rouge"), "de": "rot"},
    {"en": "blue", "fr": ("bleu", "bleue"), "de": "blau"},
    {"en": "green", "fr": ("vert", "verte"), "de": "grün"},
    {"en": "yellow", "fr": ("jaune", "jaune"), "de": "gelb"},
)
TIMES = (
    {"en": "today", "fr": "aujourd'hui", "de": "heute"},
    {"en": "in the morning", "fr": "le matin", "de": "am morgen"},
    {"en": "every day", "fr": "chaque jour", "de": "jeden tag"},
    {"en": "again", "fr": "encore", "de": "wieder"},
    {"en": "at night", "fr": "la nuit", "de": "in der nacht"},
)
# German accusative definite article and weak adjective ending per gender
_DE_ACC = {"m": ("den", "en"), "f": ("die", "e"), "n": ("das", "e")}


def _sentence(language: str, name: str, verb: dict, noun: dict, colour: dict, time: dict) -> str:
    if language == "en":
        return f"{name} {verb['en']} the {colour['en']} {noun['en']} {time['en']}"
    if language == "fr":
        word, gender = noun["fr"]
        adj = colour["fr"][0 if gender == "m" else 1]
        article = "le" if gender == "m" else "la"
        return f"{name} {verb['fr']} {article} {word} {adj} {time['fr']}"
    if language == "de":  # time adverb before the object: the natural German order
        word, gender = noun["de"]
        article, ending = _DE_ACC[gender]
        return f"{name} {verb['de']} {time['de']} {article} {colour['de']}{ending} {word}"
    raise ValueError(f"language must be one of {LANGUAGES}, got {language!r}")


@lru_cache(maxsize=None)
def _order() -> tuple[tuple[int, int, int, int, int], ...]:
    combos = [(a, b, c, d, e) for a in range(len(NAMES)) for b in range(len(VERBS)) for c in range(len(NOUNS))
              for d in range(len(COLOURS)) for e in range(len(TIMES))]
    perm = np.random.default_rng(PERMUTATION_SEED).permutation(len(combos))
    return tuple(combos[i] for i in perm)


def count() -> int:
    return len(_order())


def sentence(language: str, index: int) -> str:
    """Sentence ``index`` (0 <= index < count()) in ``language``; the same index is the same sentence."""
    order = _order()
    if not 0 <= index < len(order):
        raise ValueError(f"sentence index must be in [0, {len(order)}), got {index}")
    a, b, c, d, e = order[index]
    return _sentence(language, NAMES[a], VERBS[b], NOUNS[c], COLOURS[d], TIMES[e])


def is_held_out(index: int) -> bool:
    return index % HELD_OUT_EVERY == HELD_OUT_EVERY - 1


def sentence_ids(split: str) -> list[int]:
    """Ids of the ``"train"`` or ``"heldout"`` sentences (disjoint; together all of them)."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    return [i for i in range(count()) if is_held_out(i) == (split == "heldout")]


def vocabulary(language: str) -> set[str]:
    return {w for i in range(count()) for w in sentence(language, i).split()}
