"""Tiny defaults: small models trained on the synthetic world with the pack's own trainers.

One registry names, per system, the recipe that trains its default (``train-defaults SYSTEM``) and
evaluates it on held-out clips (``eval-defaults SYSTEM``). Every recipe takes its clips from
``synthworld.splits`` (fixed train / held-out seed ranges) and writes fp16 safetensors in the real
checkpoint layouts into the pack's ``defaults/`` folder, where the strict loaders read them.
"""
from __future__ import annotations

import importlib
from typing import Protocol

# system -> module holding its recipe (a module-level ``RECIPE``); None: not built yet (issues 17-20).
RECIPES: dict[str, str | None] = {
    "audiogen_omni": ".audiogen_omni",
    "audiogen_omni_speech": ".audiogen_omni_speech",  # video_to_speech: its own codec, Synchformer and MMDiT
    "audiogen_omni_song": ".audiogen_omni_song",  # song_from_lyrics: an MMDiT and text encoder on the speech codec
    "dualdub": ".dualdub",
    "ovi": ".ovi",
    "mtv": ".mtv",
    "just_dub_it": ".just_dub_it",
}
SCALES = ("smoke", "feasibility", "full")  # smoke: seconds (tests); feasibility: minutes; full: the shipped default


class Recipe(Protocol):
    system: str
    files: dict[str, str]  # part -> file name
    folders: dict[str, str]  # part -> ComfyUI model folder (defaults/<folder>/soundstage-tiny/<system>/<file>)
    card_clips: int  # held-out clips its card is measured on: at least the issues' 16, more where 16 are noise

    def train(self, out_dir: str, *, scale: str, seed: int) -> dict: ...

    def evaluate(self, weights_dir: str, out_dir: str, *, scale: str, clips: int, seed: int) -> dict: ...


def recipe(system: str) -> Recipe:
    if system not in RECIPES:
        raise ValueError(f"unknown system {system!r}; one of {sorted(RECIPES)}")
    module = RECIPES[system]
    if module is None:
        raise ValueError(f"no tiny-default recipe for {system!r} yet (the registry lists it as planned)")
    return importlib.import_module(module, __name__).RECIPE
