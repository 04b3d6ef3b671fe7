"""One training skeleton for every ``soundstage train ...`` entry, built on Hugging Face accelerate.

The same code runs a few CPU steps in a test and a multi-GPU / multi-node job under
``accelerate launch``: mixed precision, gradient accumulation, clipping, checkpoint/resume and
logging are handled here; a system only supplies the model, its loss and its data.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import torch

log = logging.getLogger("soundstage.train")

LossFn = Callable[[torch.nn.Module, Any], "tuple[torch.Tensor, dict[str, float]]"]


@dataclass
class TrainConfig:
    out_dir: str
    steps: int = 1000
    lr: float = 1e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    schedule: str = "constant"  # constant | linear | cosine
    grad_accum: int = 1
    clip_grad: float | None = 1.0
    mixed_precision: str = "no"  # no | fp16 | bf16
    log_every: int = 10
    save_every: int = 500
    keep_checkpoints: int = 2
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def lr_lambda(cfg: TrainConfig) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        if cfg.schedule == "linear":
            return max(0.0, 1.0 - progress)
        if cfg.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        return 1.0

    return factor


def _cycle(batches: Iterable) -> Iterator:
    while True:
        empty = True
        for batch in batches:
            empty = False
            yield batch
        if empty:
            raise ValueError("the training data yielded no batches")


class Trainer:
    """Optimises ``model`` with ``loss_fn(model, batch) -> (loss, logs)``.

    ``param_groups`` (optional) lets a system give parts of the model their own learning rates
    (JUST-DUB-IT trains video and audio LoRA weights at 2e-4 and 1e-5).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        loss_fn: LossFn,
        cfg: TrainConfig,
        *,
        param_groups: list[dict[str, Any]] | None = None,
        on_step: Callable[[int, dict[str, float]], None] | None = None,
    ):
        from accelerate import Accelerator
        from accelerate.utils import set_seed

        self.cfg = cfg
        self.out = Path(cfg.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        set_seed(cfg.seed)
        self.accelerator = Accelerator(
            gradient_accumulation_steps=cfg.grad_accum, mixed_precision=cfg.mixed_precision, cpu=not torch.cuda.is_available()
        )
        groups = param_groups or [{"params": [p for p in model.parameters() if p.requires_grad]}]
        optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
        self.model, self.optimizer, self.scheduler = self.accelerator.prepare(model, optimizer, scheduler)
        self.loss_fn = loss_fn
        self.on_step = on_step
        self.step = 0
        self.history: list[dict[str, float]] = []

    # -- checkpoints -------------------------------------------------------------------------
    def checkpoint_dirs(self) -> list[Path]:
        return sorted(self.out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))

    def save(self) -> Path:
        path = self.out / f"checkpoint-{self.step}"
        self.accelerator.save_state(str(path), safe_serialization=True)
        if self.accelerator.is_main_process:
            (path / "trainer.json").write_text(json.dumps({"step": self.step, "config": asdict(self.cfg)}, default=str))
            for old in self.checkpoint_dirs()[: -self.cfg.keep_checkpoints]:
                for f in sorted(old.rglob("*"), reverse=True):
                    f.unlink() if f.is_file() else f.rmdir()
                old.rmdir()
        return path

    def resume(self, path: str | Path | None = None) -> bool:
        """Resume from ``path`` or the newest checkpoint in ``out_dir``; False when there is none."""
        if path is None:
            found = self.checkpoint_dirs()
            if not found:
                return False
            path = found[-1]
        path = Path(path)
        self.accelerator.load_state(str(path))
        self.step = int(json.loads((path / "trainer.json").read_text())["step"])
        log.info("resumed from %s at step %d", path, self.step)
        return True

    # -- loop --------------------------------------------------------------------------------
    def fit(self, batches: Iterable, *, stop_at: int | None = None) -> list[dict[str, float]]:
        """Train until ``cfg.steps`` (or ``stop_at``, to end a session early and resume later)."""
        stream = _cycle(batches)
        self.model.train()
        end = min(self.cfg.steps, stop_at or self.cfg.steps)
        while self.step < end:
            logs: dict[str, float] = {}
            for _ in range(self.cfg.grad_accum):
                batch = next(stream)
                with self.accelerator.accumulate(self.model):
                    loss, logs = self.loss_fn(self.model, batch)
                    self.accelerator.backward(loss)
                    if self.accelerator.sync_gradients and self.cfg.clip_grad:
                        self.accelerator.clip_grad_norm_(self.model.parameters(), self.cfg.clip_grad)
                    self.optimizer.step()
                    self.scheduler.step()
                    self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
            logs = {"loss": float(loss.detach()), **{k: float(v) for k, v in logs.items()}, "step": self.step}
            self.history.append(logs)
            if self.on_step:
                self.on_step(self.step, logs)
            if self.step % self.cfg.log_every == 0 and self.accelerator.is_main_process:
                log.info("step %d %s", self.step, {k: round(v, 5) for k, v in logs.items() if k != "step"})
                with open(self.out / "log.jsonl", "a") as f:
                    f.write(json.dumps(logs) + "\n")
            if self.step % self.cfg.save_every == 0 or self.step == end:
                self.save()
        return self.history

    def unwrapped(self) -> torch.nn.Module:
        return self.accelerator.unwrap_model(self.model)
