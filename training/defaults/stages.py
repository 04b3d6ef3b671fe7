"""What every tiny-default recipe does around its stages: take a finished stage from an earlier run of the
same work folder, else train it on the shared trainer and log its wall / CPU time and loss curve.

A finished stage is reused only when a rerun asks for the same stage: with a ``key`` (everything the stage's
weights depend on: its data, settings and the keys of the stages it reads), a stage is taken when its key is
unchanged, so changing one stage's steps retrains that stage and those after it that read it, nothing else;
without one, when the work folder was started with the same scale and seed (``settings.json``). Either
way a recipe can be run as bounded pieces and still give the weights of an uninterrupted run (every stage
is seeded on its own).
"""
from __future__ import annotations

import json
import pickle
import time
from pathlib import Path

import numpy as np

from ..trainer import TrainConfig, Trainer


def work_folder(out_dir: str, scale, seed: int) -> Path:
    """A recipe's work folder, with the ``settings.json`` its stages resume under (the stage caches live in it)."""
    from dataclasses import asdict

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "settings.json").write_text(json.dumps({"scale": asdict(scale), "seed": seed}))
    return out


def start_run(out_dir: str, scale, seed: int) -> tuple[Path, Path, list, tuple[float, float]]:
    """A recipe's run begins: its work folder, the ``weights`` folder inside it, an empty stage log and the
    (wall, CPU) clocks ``write_train_report`` measures from."""
    out = work_folder(out_dir, scale, seed)
    weights = out / "weights"
    weights.mkdir(exist_ok=True)
    return out, weights, [], (time.time(), time.process_time())


def finished(out: Path, name: str, log: list, resume: bool, key: dict | None = None) -> bool:
    """A stage an earlier run finished (its ``stage.json`` exists, with the same ``key`` when one is given):
    its log entry is taken, marked resumed."""
    entry = out / name / "stage.json"
    if not (resume and entry.is_file()):
        return False
    done = json.loads(entry.read_text())
    if key is not None and done.get("key") != json.loads(json.dumps(key)):
        return False
    log.append(done | {"resumed": True})
    return True


def record(out: Path, name: str, log: list, entry: dict) -> None:
    """Log a finished stage: in the run's ``stages.json`` (partial progress) and as the stage's marker."""
    log.append(entry)
    (out / "stages.json").write_text(json.dumps(log))
    (out / name).mkdir(parents=True, exist_ok=True)
    (out / name / "stage.json").write_text(json.dumps(entry))


def curve_entry(name: str, steps: int, wall: float, cpu: float, history: list[dict]) -> dict:
    import torch

    # the stage's own thread count: a rerun that takes the stage from an earlier run may run with another
    return {"stage": name, "steps": steps, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "threads": torch.get_num_threads(),
            "cpu_s_per_step": round(cpu / max(1, steps), 3),
            "loss_first": history[0]["loss"] if history else None,
            "loss_last": float(np.mean([h["loss"] for h in history[-10:]])) if history else None,
            "curve": [round(h["loss"], 5) for h in history]}


def stage_key(key: dict, *, steps: int, lr: float, seed: int, warmup: int, schedule: str, ema=None) -> dict:
    """A stage's whole key: the recipe's part (data, settings, upstream keys) and the trainer's."""
    return key | {"steps": steps, "lr": lr, "seed": seed, "warmup": warmup, "schedule": schedule,
                  "ema": getattr(ema, "decay", None)}


def run_stage(model, loss_fn, data, steps: int, lr: float, out: Path, seed: int, log: list, name: str, ema=None,
              warmup: int = 0, resume: bool = False, schedule: str = "constant", key: dict | None = None):
    """Train one stage on the shared trainer, or (``resume``) take it from ``out/name`` when an earlier run
    finished the same stage (same ``key`` plus these arguments; without a key, same scale and seed). Returns the
    trained model (with ``ema``: the raw model; the kept weights are ``ema.shadow``)."""
    if key is not None:
        key = stage_key(key, steps=steps, lr=lr, seed=seed, warmup=warmup, schedule=schedule, ema=ema)
    from safetensors.torch import load_file as load_tensors, save_file

    done = out / name / "final.safetensors"
    kept = ema.shadow if ema else model
    if done.is_file() and finished(out, name, log, resume, key):
        kept.load_state_dict(load_tensors(str(done)))
        return model if ema else kept
    cfg = TrainConfig(out_dir=str(out / name), steps=steps, lr=lr, seed=seed, log_every=max(1, steps // 20),
                      save_every=10**9, keep_checkpoints=1, weight_decay=0.0, warmup_steps=min(warmup, steps // 2),
                      schedule=schedule)
    start, cpu = time.time(), time.process_time()
    trainer = Trainer(model, loss_fn, cfg, on_step=(lambda s, logs: ema.update(trainer.unwrapped())) if ema else None)
    history = trainer.fit(data)
    wall, cpu = time.time() - start, time.process_time() - cpu
    model = trainer.unwrapped()
    kept = ema.shadow if ema else model
    save_file({k: v.detach().clone().contiguous() for k, v in kept.state_dict().items()}, str(done))
    record(out, name, log, curve_entry(name, steps, wall, cpu, history) | ({"key": key} if key is not None else {}))
    return model


class Beside:
    """``fn(*args)`` in a second process while this one trains the stages that do not read it: a recipe's
    independent branches share the 2-core budget a thread each instead of running one after the other. Each side
    gets half of this process's threads. ``result()`` waits for the value (an error there is raised here, with the
    other process's traceback as a note); leaving the ``with`` block stops the other process and gives this one
    its threads back.

    The second process is a fresh interpreter (spawn: a forked one would inherit this process's OpenMP pool, which
    can hang it); ``beside_bootstrap.py`` gives it the pack first, so ``fn`` may be any function of the pack.
    """

    def __init__(self, fn, *args):
        import multiprocessing
        import runpy

        import torch

        self.threads = torch.get_num_threads()
        half = max(1, self.threads // 2)
        context = multiprocessing.get_context("spawn")
        self.conn, theirs = context.Pipe()
        setup = {"package": __name__.split(".")[0], "root": str(Path(__file__).resolve().parents[2]),
                 "threads": half, "module": fn.__module__, "qualname": fn.__qualname__, "conn": theirs}
        self.process = context.Process(target=runpy.run_path, daemon=True,
                                       args=(str(Path(__file__).with_name("beside_bootstrap.py")),),
                                       kwargs={"init_globals": {"BESIDE": setup}})
        self.process.start()
        theirs.close()
        # plain pickle, tensors copied: multiprocessing's own pickler hands them over as shared memory, which
        # the sender frees when it ends, before the receiver has read them
        self.conn.send_bytes(pickle.dumps(args))
        torch.set_num_threads(half)

    def result(self):
        try:
            reply = pickle.loads(self.conn.recv_bytes())
        except EOFError:
            self.process.join()
            raise RuntimeError(f"the second process ended without a result (exit code {self.process.exitcode})") from None
        if reply[0] == "error":
            reply[1].add_note(f"in the second process (stages.Beside):\n{reply[2]}")
            raise reply[1]
        return reply[1]

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        import torch

        if self.process.is_alive():
            self.process.terminate()
        self.process.join()
        self.conn.close()
        torch.set_num_threads(self.threads)


def wall_minutes(train: dict) -> float:
    """A run's wall time from its stages' own times (also those a rerun took from an earlier run), clips and
    features included: a stage that ran ``beside`` others counts only for the time it outlasted them."""
    own = {s["stage"]: s["wall_s"] for s in train["stages"] if not s.get("beside")}
    # the clips and the features are steps of the first process too: a branch may run beside them (named so)
    own |= {step: train.get(f"{step}_s", 0) for step in ("data", "features")}
    total = sum(own.values())
    for overlapped, branch in beside_branches(train["stages"]).items():
        total += max(0.0, sum(s["wall_s"] for s in branch) - sum(own.get(name, 0.0) for name in overlapped))
    return round(total / 60, 1)


def beside_branches(stages: list[dict]) -> dict[tuple, list[dict]]:
    """The stages that ran in a second process, grouped by the stages they ran beside (one branch each)."""
    branches: dict[tuple, list[dict]] = {}
    for s in stages:
        if s.get("beside"):
            branches.setdefault(tuple(s["beside"]), []).append(s)
    return branches


def write_train_report(out: Path, system: str, files: dict, *, scale: str, settings: dict, seed: int, stages: list,
                       started: tuple[float, float], **parts) -> dict:
    """A run's ``train_report.json`` (what the model card is written from): its settings, the recipe's own ``parts``,
    every stage's log, wall and CPU time since ``started`` (time.time(), time.process_time()), the thread count and
    each file of ``out/weights`` under the name the loaders list. Returns the report."""
    import torch

    weights = out / "weights"
    report = {"system": system, "scale": scale, "scale_settings": settings, "seed": seed, **parts, "stages": stages,
              "wall_s": round(time.time() - started[0], 1), "cpu_s": round(time.process_time() - started[1], 1),
              "threads": torch.get_num_threads(),
              "files": {k: {"name": f"soundstage-tiny/{system}/{v}", "bytes": (weights / v).stat().st_size}
                        for k, v in files.items()}}
    (out / "train_report.json").write_text(json.dumps(report, indent=1))
    return report


__all__ = ["Beside", "beside_branches", "curve_entry", "finished", "record", "run_stage", "stage_key", "wall_minutes",
           "write_train_report"]
