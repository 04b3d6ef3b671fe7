"""Fixed seed ranges of the synthetic world: which clips train the tiny defaults and which evaluate them.

Every trainer and evaluator of the five systems takes its clips from here, so no evaluation clip is
ever seen in training. A clip is named by (split, index); its scene seed, speaker and sentence follow
from those two numbers alone, and the same (split, index) in another language is its dubbing pair
(same scene, speaker and sentence id).

| split     | scene seeds              | sentences                         |
|-----------|--------------------------|-----------------------------------|
| train     | 0 .. 99 999              | sentence ids with id % 10 != 9    |
| heldout   | 1 000 000 .. 1 000 999   | sentence ids with id % 10 == 9    |
| ci        | 1 000 000 .. 1 000 001   | (the first two held-out clips)    |

Split clips start their events at random times (``ClipSpec.event_delays``: balls held 0-1 s, first blink
at 0.2-1.6 s), so that another clip's soundtrack is not nearly in sync by chance.

How each default's clips speak (``clip_spec(..., speech_timing=)``; the same seeds, sentences and speakers
either way, and every other part of a clip is the same in both):

| speech timing     | speech start                 | pause between words               | used by                  |
|-------------------|------------------------------|-----------------------------------|--------------------------|
| fixed (default)   | 0.3 s                        | 0.07 s after every word           | the other defaults       |
| varied            | 0.2-1.2 s, drawn per clip    | 0.04-0.35 s, drawn per word       | DualDub (train and held-out) |

Varied timing is drawn from the clip's own generator (seed, 2) and keeps the sentence inside the clip (ending
0.1 s before it; ``speech.varied_timing`` scales the draws down to fit), so the timing of the speech is seen
on the lips and is not a function of the transcript and the speaker alone.

Song clips (``clip_spec(..., voice="sing")``, the song mode's data) are the same clips with the sentence sung:
a word on each beat at ``song.SONG_BPM`` from the second beat, each held on its beat's note of the clip's tune
(one of ``song.TUNES``, drawn from the clip's generator (seed, 3) and named in the caption), over the tune's
chords. Same seeds, sentences, speakers, balls and lamp.

These ranges are part of every default's model card; never change them, add new ranges instead.
"""
from __future__ import annotations

from dataclasses import replace

from . import sentences
from .clip import ClipSpec
from .speech import SPEAKERS

SEED_RANGES = {
    "train": range(0, 100_000),
    "heldout": range(1_000_000, 1_001_000),
    "ci": range(1_000_000, 1_000_002),
}
# What a clip holds, per task: v2a = balls and beeps only (video to audio), speech = the face talking too.
TASKS = ("v2a", "speech", "full")
_SENTENCE_STRIDE = 7919  # a prime: consecutive clips get spread-out sentences


def split_of_seed(seed: int) -> str | None:
    for name in ("train", "heldout"):
        if seed in SEED_RANGES[name]:
            return name
    return None


def clip_spec(split: str, index: int, *, task: str = "full", language: str = "en", seconds: float = 3.0,
              size: int = 128, fps: int = 25, sample_rate: int = 16000, speech_timing: str = "fixed",
              voice: str = "speak") -> ClipSpec:
    """The ``index``-th clip of ``split``; deterministic, and aligned across languages."""
    if split not in SEED_RANGES:
        raise ValueError(f"split must be one of {sorted(SEED_RANGES)}, got {split!r}")
    seeds = SEED_RANGES[split]
    if not 0 <= index < len(seeds):
        raise ValueError(f"{split} has {len(seeds)} clips; index {index} is out of range")
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    ids = sentences.sentence_ids("heldout" if split in ("heldout", "ci") else "train")
    speakers = sorted(SPEAKERS)
    spec = ClipSpec(seed=seeds[index], seconds=seconds, fps=fps, width=size, height=size, sample_rate=sample_rate,
                    language=language, speaker=speakers[index % len(speakers)],
                    sentence=ids[(index * _SENTENCE_STRIDE) % len(ids)], n_balls=1 + index % 2, event_delays=True,
                    speech_timing=speech_timing, voice=voice)
    if task == "v2a":  # the face stays still and silent: sound comes from the balls and the lamp only
        spec = replace(spec, speech=False, head_motion=False, profile_views=False)
    return spec


def clip_specs(split: str, count: int, **kwargs) -> list[ClipSpec]:
    return [clip_spec(split, i, **kwargs) for i in range(count)]
