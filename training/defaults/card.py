"""Model cards of the tiny defaults (``defaults/cards/<system>.md``), written from the training and
evaluation reports so that every number on a card was measured by the command it names."""
from __future__ import annotations

import json
from pathlib import Path

from ...synthworld.splits import SEED_RANGES
from .stages import beside_branches, wall_minutes


def card_markdown(train: dict, evaluation: dict | None, *, can: list[str], cannot: list[str]) -> str:
    sc = train["scale_settings"]
    lines = [
        f"# soundstage-tiny/{train['system']}", "",
        "A small model trained on the pack's synthetic world (a cartoon world: bouncing balls, a beeping lamp, "
        "a drawn face), shipped so that the example workflows run without downloaded weights. Not a general model.", "",
        "## Data", "",
        f"- training clips: synthworld split `train`, indices {train['train_seeds'][0]}..{train['train_seeds'][1]} "
        f"(scene seeds within {SEED_RANGES['train'].start}..{SEED_RANGES['train'].stop - 1}), "
        f"{sc['seconds']} s, {sc['size']} px" + (f" (and {sc['scene_seconds']} s scenes of the same indices for the stages "
                                                  f"that learn timing)" if sc.get("scene_seconds") else "")
        + (f", {sc['speech_timing']} speech timing (synthworld.splits)" if sc.get("speech_timing") else ""),
    ]
    if sc.get("tts_clips"):  # a speech-only corpus beside the clips (DualDub's TTS task)
        first = train["train_seeds"][1] + 1
        lines.append(f"- speech-only sentences: split `train`, indices {first}..{first + sc['tts_clips'] - 1}, their "
                     f"speech stem and transcript only (no frames)")
    lines += [
        f"- evaluation clips: split `heldout` (seeds {SEED_RANGES['heldout'].start}.."
        f"{SEED_RANGES['heldout'].stop - 1}), never used in training", "",
        "## Reproduce", "",
        f"`python -m soundstage train-defaults {train['system']} --scale {train['scale']} --seed {train['seed']} --install`", "",
        "| stage | steps | CPU s | wall s |", "|---|---|---|---|",
    ]
    lines += [f"| {s['stage']} | {s['steps']} | {s.get('cpu_s', '')} | {s['wall_s']} |" for s in train["stages"]]
    beside = [f"{' and '.join(s['stage'] for s in branch)} ran beside {' and '.join(over)}"
              for over, branch in beside_branches(train["stages"]).items()]
    lines += ["", f"Total wall time {wall_minutes(train)} min with {thread_count(train)}"
                  + (" in each of two processes" if beside else "") + " (every stage's own "
                  f"time, also for stages a rerun took from an earlier run; clips and features included"
                  + "".join(f"; {b}, in a second process" for b in beside) + ").", "",
              "## Files", "", "| file | bytes |", "|---|---|"]
    lines += [f"| `{f['name']}` | {f['bytes']} |" for f in train["files"].values()]
    if evaluation and "table" in evaluation:  # a recipe with metrics of its own gives its table
        lines += ["", "## Held-out metrics", "", f"`python -m soundstage eval-defaults {train['system']}` on "
                  f"{len(evaluation['clips'])} held-out clips:", ""] + evaluation["table"]
    elif evaluation:
        lines += ["", "## Held-out metrics", "", f"`python -m soundstage eval-defaults {train['system']}` on "
                  f"{len(evaluation['clips'])} held-out clips (median onset error, misses count as 200 ms):", "",
                  "| condition | kind | median ms | miss rate | onset precision |", "|---|---|---|---|---|"]
        for cond, kinds in evaluation["summary"].items():
            for kind, m in kinds.items():
                lines.append(f"| {cond} | {kind} | {m['median_ms']} | {m['miss_rate']} | {m['onset_precision']} |")
        if probe := evaluation.get("synchformer_probe"):
            lines += ["", f"Synchformer alone (events read back from its tokens): median {probe['median_ms']} ms, "
                          f"miss rate {probe['miss_rate']}, precision {probe['precision']} over {probe['events']} events."]
    lines += ["", "## What it can do", ""] + [f"- {c}" for c in can]
    lines += ["", "## What it cannot do", ""] + [f"- {c}" for c in cannot]
    return "\n".join(lines) + "\n"


def thread_count(train: dict) -> str:
    """The CPU threads the stages trained with (each stage records its own; older records only the run's)."""
    counts = sorted({s["threads"] for s in train["stages"] if s.get("threads")}) or [train["threads"]]
    return "/".join(map(str, counts)) + " CPU thread" + ("s" if counts != [1] else "")


def write_card(path: Path, train: dict, evaluation: dict | None, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(card_markdown(train, evaluation, **kwargs))
    path.with_suffix(".json").write_text(json.dumps({"train": {k: v for k, v in train.items() if k != "stages"},
                                                     "stages": [{k: v for k, v in s.items() if k != "curve"}
                                                                for s in train["stages"]],
                                                     "eval": evaluation and evaluation["summary"],
                                                     "synchformer_probe": evaluation and evaluation.get("synchformer_probe"),
                                                     "decode": evaluation and evaluation.get("decode")},
                                                    indent=1))
    return path
