"""Folders of clips with a manifest: the format the training entries read."""
from __future__ import annotations

import json
from pathlib import Path

from .clip import ClipSpec, generate_clip, write_clip
from .speech import LINES, SPEAKERS
from .splits import clip_spec


def generate_dataset(out: str | Path, n: int, *, seed: int = 0, seconds: float = 3.0, size: int = 128,
                     fps: int = 25, sample_rate: int = 16000, languages: tuple[str, ...] = ("en", "fr"),
                     split: str | None = None, task: str = "full") -> dict:
    """``n`` clips; clips come in dubbing pairs (the same speaker and line in each language), and every
    entry names a reference-voice file of its speaker from another clip. With ``split`` ("train" or
    "heldout"), pair ``k`` is clip ``k`` of that fixed seed range (splits.py), speaking a grammar sentence."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    speakers = sorted(SPEAKERS)
    entries = []
    for i in range(n):
        pair, lang = divmod(i, len(languages))
        if split is not None:
            spec = clip_spec(split, pair, task=task, language=languages[lang], seconds=seconds, size=size, fps=fps,
                             sample_rate=sample_rate)
        else:
            spec = ClipSpec(seed=seed * 1000 + pair, seconds=seconds, fps=fps, width=size, height=size,
                            sample_rate=sample_rate, language=languages[lang], speaker=speakers[pair % len(speakers)],
                            line=pair % len(LINES["en"]))
        entry = write_clip(generate_clip(spec), out, f"clip{i:04d}")
        entry["pair_id"] = pair
        if split is not None:
            entry["split"] = split
        entries.append(entry)
    for e in entries:  # reference voice: the same speaker's speech stem from a different clip when there is one
        same = [o for o in entries if o["speaker"] == e["speaker"] and o["id"] != e["id"]]
        e["reference_voice"] = (same[0] if same else e)["speech"]
    manifest = {"format": "soundstage-synthworld/1", "root": ".", "clips": entries}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest
