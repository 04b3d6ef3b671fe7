"""The batch's items on a Ray cluster: one task per item, models kept per worker, retries when a worker dies.

Each worker is a Ray actor holding one ``Runner``: the runner's output cache keeps the model loaders'
results, so a worker loads its models for its first item and reuses them for the rest. The driver keeps
one item in flight per worker and publishes every result itself (``Batch.publish``: one rename, one
manifest line), so the manifest has a single writer. When a worker dies, Ray restarts the actor
(``max_restarts``) and the driver sends the item again, up to ``retries`` times; the dead attempt's
staging folder is never published. The inputs and out folders must be seen at the same paths by every
node of the cluster (a shared disk), as the runner's own model and input folders are.
"""
from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from .batch import Batch, BatchError, Item, ProgressBars, run_item


def _ray():
    try:
        import ray
    except ImportError:
        raise BatchError("--ray needs Ray: pip install 'ray>=2.40' (or the pack's extra: soundstage[ray])") from None
    return ray


class BatchWorker:
    """One Ray actor: a runner whose model cache lives as long as the worker process."""

    def __init__(self, runner_kwargs: dict, prompt: dict, load_key: str, staging_root: str):
        from .runner import Runner

        self.runner = Runner(**runner_kwargs)
        self.prompt, self.load_key, self.staging_root = prompt, load_key, staging_root

    def run(self, item: Item):
        from .runner import ExecutionInterrupted

        try:
            return run_item(self.runner, self.prompt, self.load_key, item, self.staging_root)
        except ExecutionInterrupted:
            return None  # the driver asked to stop; nothing was kept

    def interrupt(self) -> None:
        self.runner.interrupt()

    def pid(self) -> int:
        return os.getpid()


def _package_path() -> str | None:
    """The folder to put on the workers' PYTHONPATH so they import this pack by its name."""
    package = __package__.split(".")[0]
    root = Path(importlib.import_module(package).__file__).parent
    return str(root.parent) if root.name == package else None


class RayExecutor:
    """Runs a batch's items on Ray; ``interrupt()`` (the CLI's signal handler) stops it cleanly."""

    def __init__(self, address: str | None, num_cpus: float, num_gpus: float, workers: int | None,
                 retries: int, runner_kwargs: dict):
        self.address, self.num_cpus, self.num_gpus = address, num_cpus, num_gpus
        self.workers, self.retries, self.runner_kwargs = workers, retries, runner_kwargs
        self.stopping = False
        self._actors: list = []

    def interrupt(self) -> None:
        """Stop sending items; the running ones are asked to stop at their next step (only a flag is set
        here: this runs in a signal handler, the driver's loop passes it on)."""
        self.stopping = True

    def _init(self, ray) -> None:
        if ray.is_initialized():
            return
        env = {}
        path = _package_path()
        if path is not None and self.address is None:  # a local cluster's workers see this machine's pack
            env["PYTHONPATH"] = os.pathsep.join(p for p in (path, os.environ.get("PYTHONPATH")) if p)
        elif path is None:
            raise BatchError(f"Ray workers import the pack as {__package__.split('.')[0]!r}: install it, or "
                               "put the folder that holds it on PYTHONPATH")
        kwargs = dict(include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env} if env else None)
        if self.address is None:
            want = self.workers or max(1, os.cpu_count() or 1)
            kwargs["num_cpus"] = max(int(-(-want * self.num_cpus // 1)), 1)
        else:
            kwargs["address"] = self.address
        ray.init(**kwargs)

    def _worker_count(self, ray, items: int) -> int:
        if self.workers:
            return max(1, min(self.workers, items))
        resources = ray.cluster_resources()
        fits = [int(resources.get("CPU", 1) // self.num_cpus)] if self.num_cpus > 0 else []
        if self.num_gpus > 0:
            fits.append(int(resources.get("GPU", 0) // self.num_gpus))
        return max(1, min([items, *fits]))

    def run(self, prompt: dict, load_key: str, batch: Batch, items: list[Item], bars: ProgressBars | None = None):
        ray = _ray()
        self._init(ray)
        try:
            self._run(ray, prompt, load_key, batch, items, bars)
        finally:
            for actor in self._actors:
                ray.kill(actor)
            self._actors = []
            if self.address is None:
                ray.shutdown()

    def _run(self, ray, prompt, load_key, batch, items, bars) -> None:
        # max_restarts: a dead worker comes back (reloading its models); max_concurrency 2 lets interrupt()
        # reach a worker busy with an item, while the driver never sends it a second item at once.
        actor_class = ray.remote(num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_restarts=-1,
                                 max_task_retries=0, max_concurrency=2)(BatchWorker)
        count = self._worker_count(ray, len(items))
        self._actors = [actor_class.remote(self.runner_kwargs, prompt, load_key, batch.staging_root)
                        for _ in range(count)]
        queue = list(reversed(items))  # (item, attempt) pairs for retries
        idle = list(self._actors)
        running: dict = {}  # future -> (actor, item, attempt); item None: a probe of a restarting actor
        told = False
        while queue and not self.stopping and (idle or running) or any(i is not None for _, i, _ in running.values()):
            if self.stopping and not told:
                told = True
                for actor in self._actors:
                    actor.interrupt.remote()
            while idle and queue and not self.stopping:
                actor, item = idle.pop(), queue.pop()
                item, attempt = item if isinstance(item, tuple) else (item, 1)
                running[actor.run.remote(item)] = (actor, item, attempt)
            done, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
            for future in done:
                actor, item, attempt = running.pop(future)
                try:
                    record = ray.get(future)
                except ray.exceptions.RayActorError as exc:
                    # Ray restarts the actor; it gets items again once a probe answers (models reload there).
                    probes = attempt + 1 if item is None else 1
                    if probes <= max(self.retries, 1):
                        running[actor.pid.remote()] = (actor, None, probes)
                    if item is None:
                        continue
                    if attempt <= self.retries:
                        print(f"soundstage batch: the worker running {item.input} died; sending it again "
                              f"(attempt {attempt + 1})", file=sys.stderr)
                        queue.append((item, attempt + 1))
                        continue
                    record = {"input": item.input, "folder": item.folder, "status": "error", "outputs": [],
                              "seconds": 0.0, "metrics": {}, "worker": None, "reused": [],
                              "error": f"its worker died {attempt} times ({type(exc).__name__})"}
                else:
                    idle.append(actor)
                    if item is None:  # a restarted worker answered its probe
                        continue
                if record is None:  # interrupted on the worker: nothing to publish
                    batch.summary.interrupted = True
                    continue
                record["attempts"] = attempt
                batch.publish(record)
                if bars is not None:
                    bars.done_item(record)
        for item in reversed(queue):  # only when no worker is left, or when stopping
            item = item[0] if isinstance(item, tuple) else item
            if not self.stopping:
                batch.publish({"input": item.input, "folder": item.folder, "status": "error", "outputs": [],
                               "seconds": 0.0, "metrics": {}, "worker": None, "reused": [], "attempts": 0,
                               "error": "no Ray worker was left to run it"})
        if self.stopping:
            batch.summary.interrupted = True
