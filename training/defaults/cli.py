"""``python -m soundstage train-defaults SYSTEM`` and ``python -m soundstage eval-defaults [SYSTEM]``."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from ... import defaults as pack_defaults
from . import RECIPES, SCALES, recipe
from .card import write_card


def add_train_arguments(p) -> None:
    p.add_argument("system", choices=sorted(RECIPES))
    p.add_argument("--scale", choices=SCALES, default="full",
                   help="full: the shipped default; feasibility: minutes; smoke: seconds (tests)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="work folder (default: defaults-work/SYSTEM-SCALE); a rerun with the same "
                   "folder, scale and seed takes the stages it already finished")
    p.add_argument("--install", action="store_true",
                   help="evaluate on the recipe's held-out clips (16, or more where 16 are noise), copy the weights "
                        "into the pack's defaults/ folder and write its model card")


def add_eval_arguments(p) -> None:
    p.add_argument("system", nargs="?", choices=sorted(RECIPES), default=None,
                   help="one system (default: every system with installed defaults)")
    p.add_argument("--weights", default=None, help="a train-defaults work folder's weights/ (default: the pack's)")
    p.add_argument("--scale", choices=SCALES, default=None, help="clip length/size the weights were trained at "
                   "(default: from the card, else full)")
    p.add_argument("--clips", type=int, default=None, help="held-out clips (seed range 'heldout' of synthworld.splits; "
                                                           "default: as many as the system's card is measured on)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--update-card", action="store_true",
                   help="rewrite the installed default's model card with this evaluation (its training record kept): "
                        "for a changed evaluation, without retraining")
    p.add_argument("--out", default="defaults-eval", help="folder for report.json, report.md and plots")


def install(system: str, weights: Path, report: dict, evaluation: dict | None = None) -> list[Path]:
    """Copy a trained default into defaults/<folder>/soundstage-tiny/<system>/ and write its card JSON."""
    r = recipe(system)
    written = []
    for key, filename in r.files.items():
        dest = pack_defaults.file_path(r.folders[key], system, filename)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(weights / filename, dest)
        written.append(dest)
    card = write_card(pack_defaults.card_path(system), report, evaluation, can=r.can, cannot=r.cannot)
    return written + [card, card.with_suffix(".json")]


def main_train(args) -> int:
    r = recipe(args.system)
    out = Path(args.out or f"defaults-work/{args.system}-{args.scale}")
    start = time.time()
    report = r.train(str(out), scale=args.scale, seed=args.seed)
    print(json.dumps({"system": args.system, "scale": args.scale, "wall_s": round(time.time() - start, 1),
                      "weights": str(out / "weights"), "files": report["files"]}, indent=1))
    if args.install:
        evaluation = r.evaluate(str(out / "weights"), str(out / "eval"), scale=args.scale, clips=r.card_clips, seed=args.seed)
        for p in install(args.system, out / "weights", report, evaluation):
            print(f"installed {p}")
    return 0


def _installed(system: str) -> Path | None:
    """The folder of an installed default's first part (None: not every part installed)."""
    r = recipe(system)
    paths = [pack_defaults.file_path(r.folders[k], system, f) for k, f in r.files.items()]
    if not all(p.is_file() for p in paths):
        return None
    return paths[0].parent


@contextlib.contextmanager
def installed_weights(system: str):
    """An installed default as the one weights folder a recipe's ``evaluate`` reads (None: not installed). Parts
    in several model folders (DualDub's codec and CLIP sit in ComfyUI's own folders) are linked side by side
    in a temporary folder."""
    r = recipe(system)
    first = _installed(system)
    if first is None or len(set(r.folders.values())) == 1:
        yield first
        return
    with tempfile.TemporaryDirectory() as tmp:
        for key, name in r.files.items():
            os.symlink(pack_defaults.file_path(r.folders[key], system, name), Path(tmp) / name)
        yield Path(tmp)


def update_card(system: str, evaluation: dict) -> Path:
    """The installed default's card, rewritten with ``evaluation`` and the training record the card already holds."""
    r = recipe(system)
    card = json.loads(pack_defaults.card_path(system).with_suffix(".json").read_text())
    return write_card(pack_defaults.card_path(system), card["train"] | {"stages": card["stages"]}, evaluation,
                      can=r.can, cannot=r.cannot)


def main_eval(args) -> int:
    if args.update_card and (args.weights or args.clips or args.scale):
        raise ValueError("eval-defaults --update-card measures the installed default as its card does: "
                         "no --weights, --clips or --scale")
    systems = [args.system] if args.system else [s for s, m in RECIPES.items() if m is not None]
    results = {}
    for system in systems:
        with contextlib.nullcontext(Path(args.weights)) if args.weights else installed_weights(system) as weights:
            if weights is None:
                if args.system:
                    raise FileNotFoundError(f"eval-defaults: no installed {system} default in the pack's defaults/ "
                                            f"folder; run train-defaults {system} --install or give --weights")
                continue
            scale = args.scale
            card = pack_defaults.card_path(system).with_suffix(".json")
            if scale is None:
                scale = json.loads(card.read_text())["train"]["scale"] if card.is_file() and not args.weights else "full"
            result = recipe(system).evaluate(str(weights), str(Path(args.out) / system), scale=scale,
                                             clips=args.clips or recipe(system).card_clips, seed=args.seed)
        results[system] = result["summary"]
        print(open(Path(args.out) / system / "report.md").read())
        if args.update_card:
            print(f"updated {update_card(system, result)}")
    if not results:
        print("eval-defaults: no installed defaults to evaluate")
    return 0
