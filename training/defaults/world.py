"""Clips of the synthetic world for the default recipes: always through ``synthworld.splits``."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...synthworld import generate_clip
from ...synthworld.splits import clip_spec


@dataclass
class WorldClip:
    split: str
    index: int
    frames: np.ndarray  # [T, H, W, 3] uint8
    fps: int
    audio: np.ndarray  # the recipe's target stem(s), float32 mono
    sample_rate: int
    truth: dict


def world_clips(split: str, count: int, *, task: str, stems: tuple[str, ...], seconds: float, size: int,
                language: str = "en", start: int = 0, voice: str = "speak") -> list[WorldClip]:
    """``count`` clips of ``split`` from index ``start``; ``audio`` is the sum of ``stems``."""
    out = []
    for i in range(start, start + count):
        clip = generate_clip(clip_spec(split, i, task=task, language=language, seconds=seconds, size=size,
                                       voice=voice))
        audio = sum(clip.stems[s] for s in stems).astype(np.float32)
        out.append(WorldClip(split, i, clip.frames, clip.spec.fps, audio, clip.spec.sample_rate, clip.truth))
    return out


def event_times(truth: dict) -> dict[str, list[float]]:
    """Ground-truth sound events of a clip by kind (what the onset metric matches against)."""
    return {"impacts": [e["time"] for e in truth.get("impacts", [])],
            "beeps": [e["time"] for e in truth.get("beeps", [])]}
