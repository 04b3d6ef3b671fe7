"""Run one workflow over a folder of inputs: one run per file, a manifest, resume, a summary.

The workflow's load node (the single Load Video / Load Audio node, or the one named with ``input_node``)
gets each input file in turn; everything else, ``--set`` overrides included, is the same for every item.

Where things go (all under ``--out``):

- ``OUT/<input path, its extension's dot as '_'>/``: one folder per item (``clips/a.mp4`` -> ``clips/a_mp4/``)
  holding the files the workflow saved and ``.soundstage-item.json``, the item's record;
- ``OUT/manifest.jsonl``: one JSON line per finished item (input, folder, status, outputs, seconds,
  metrics, error, worker, attempts, reused); the last line of an input wins;
- ``OUT/.soundstage-batch/``: the staging area of the run in progress (removed at the end).

An item runs into its own hidden staging folder; only the driver (this process, also when the items run
on Ray) publishes it, with one directory rename, and then appends its manifest line. So an interrupted
or failed item leaves nothing under its name, an output folder is never replaced, and each item's
outputs appear exactly once. A crash between the rename and the manifest line is repaired on resume
from the item's own record. Resume skips the items the manifest (or an item record) says are done.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

try:
    import fcntl  # one driver per out folder; where it is missing (Windows) the lock is skipped
except ImportError:  # pragma: no cover
    fcntl = None

MANIFEST = "manifest.jsonl"
ITEM_RECORD = ".soundstage-item.json"
WORK_FOLDER = ".soundstage-batch"

# Load nodes a batch can feed, and the input that names their file.
LOAD_NODES = {"SoundstageLoadVideo": "file", "SoundstageLoadAudio": "file", "LoadVideo": "file", "LoadAudio": "audio"}
VIDEO_LOADERS = {"SoundstageLoadVideo", "LoadVideo"}


class BatchError(ValueError):
    """The batch cannot start (no load node, several without --input-node, a bad folder ...)."""


@dataclass
class Item:
    input: str  # path relative to the inputs folder, '/'-separated
    folder: str  # output folder relative to the out folder
    error: str | None = None  # refused while cataloguing (a link out of the folder, not a regular file)


@dataclass
class BatchSummary:
    records: list[dict] = field(default_factory=list)  # this run's records, in catalogue order
    skipped: list[str] = field(default_factory=list)  # done by an earlier run
    interrupted: bool = False
    seconds: float = 0.0

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.records if r["status"] != "ok"]


# ----------------------------------------------------------------------------- the graph's load node
def find_load_node(prompt: dict, input_node: str | None = None) -> tuple[str, str]:
    """(node id, input name) the batch sets to each file; BatchError saying why when there is no one answer."""
    loaders = {nid: node["class_type"] for nid, node in prompt.items() if node.get("class_type") in LOAD_NODES}
    if input_node is not None:
        node_id = str(input_node)
        if node_id not in prompt:
            raise BatchError(f"--input-node {node_id}: the workflow has no node {node_id}")
        if node_id not in loaders:
            raise BatchError(f"--input-node {node_id}: node {node_id} ({prompt[node_id].get('class_type')}) is not a "
                             f"file loader; batch feeds one of {', '.join(sorted(LOAD_NODES))}")
    elif len(loaders) == 1:
        node_id = next(iter(loaders))
    elif not loaders:
        raise BatchError(f"the workflow has no file loader to feed ({', '.join(sorted(LOAD_NODES))}); batch runs a "
                         "workflow once per input file")
    else:
        listed = ", ".join(f"{n} ({c})" for n, c in sorted(loaders.items()))
        raise BatchError(f"the workflow has {len(loaders)} file loaders: {listed}; choose the one that gets each "
                         "input file with --input-node ID")
    class_type = loaders[node_id]
    linked = prompt[node_id].get("inputs", {}).get("video")
    if class_type == "SoundstageLoadVideo" and isinstance(linked, list):
        raise BatchError(f"node {node_id} ({class_type}) takes its clip from its connected 'video' input and "
                         "ignores files; choose the loader upstream of it with --input-node")
    return node_id, LOAD_NODES[class_type]


def input_extensions(class_type: str) -> set[str]:
    from ..nodes.media import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS

    return set(VIDEO_EXTENSIONS) if class_type in VIDEO_LOADERS else set(AUDIO_EXTENSIONS) | set(VIDEO_EXTENSIONS)


# ----------------------------------------------------------------------------- the catalogue
def output_folder(relative: str) -> str:
    """``clips/a.mp4`` -> ``clips/a_mp4``: one folder per input, the extension kept so a.wav and a.mp4 differ."""
    head, _, name = relative.rpartition("/")
    stem, dot, ext = name.rpartition(".")
    name = f"{stem}_{ext}" if dot and stem else name
    return f"{head}/{name}" if head else name


def catalogue(inputs: str, extensions: Iterable[str], out: str | None = None) -> list[Item]:
    """Every file under ``inputs`` with one of ``extensions``, sorted; links are checked, never followed out.

    Hidden files and the out folder (when it lies inside ``inputs``) are left out. A link that leaves
    ``inputs``, a link to a folder, or anything not a regular file becomes an Item with ``error`` set."""
    from ..media.errors import MediaError
    from ..media.paths import resolve_inside

    root = os.path.realpath(inputs)
    if not os.path.isdir(root):
        raise BatchError(f"--inputs {inputs}: not a folder")
    skip = os.path.realpath(out) if out else None
    wanted = {e.lower() for e in extensions}
    items: list[Item] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        here = os.path.relpath(folder, root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and os.path.join(folder, d) != skip)
        for name in list(dirs):
            if os.path.islink(os.path.join(folder, name)):
                dirs.remove(name)
                rel = name if here == "." else f"{here}/{name}".replace(os.sep, "/")
                items.append(Item(rel, output_folder(rel), f"{rel!r} is a link to a folder; links are not followed"))
        for name in sorted(files):
            if name.startswith(".") or os.path.splitext(name)[1].lower() not in wanted:
                continue
            rel = name if here == "." else f"{here}/{name}".replace(os.sep, "/")
            item = Item(rel, output_folder(rel))
            try:
                resolve_inside(root, rel)
            except MediaError as exc:
                item.error = str(exc)
            items.append(item)
    folders: dict[str, str] = {}
    for item in items:  # 'a_mp4' (no extension) and 'a.mp4' would share a folder: the second is refused
        if item.folder in folders and item.error is None:
            item.error = f"its output folder {item.folder!r} is also {folders[item.folder]!r}'s; rename one"
        folders.setdefault(item.folder, item.input)
    return sorted(items, key=lambda i: i.input)


# ----------------------------------------------------------------------------- one item (driver or worker)
def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def metric_values(result, node_classes: dict) -> dict[str, dict[str, float]]:
    """The numbers the graph's evaluation nodes returned, by node id and output name."""
    metrics = {}
    for node_id, values in result.values.items():
        cls = node_classes.get(result.prompt.get(node_id, {}).get("class_type"))
        if cls is None or "Evaluation" not in str(getattr(cls, "CATEGORY", "")):
            continue
        names = list(getattr(cls, "RETURN_NAMES", None) or [])
        numbers = {(names[i] if i < len(names) else str(i)): float(v) for i, v in enumerate(values)
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if numbers:
            metrics[node_id] = numbers
    return metrics


def run_item(runner, prompt: dict, load_key: str, item: Item, staging_root: str,
             progress: Callable[[str, dict], None] | None = None) -> dict:
    """Run one item into a fresh staging folder; returns its record (``staging`` says where its files are).

    Node failures and validation errors become records with status 'error' / 'invalid' (the batch goes
    on); an interruption is raised (``ExecutionInterrupted``) after its staging folder is removed."""
    from .runner import ExecutionInterrupted, NodeExecutionError, ValidationFailed

    record = {"input": item.input, "folder": item.folder, "status": "ok", "outputs": [], "seconds": 0.0,
              "metrics": {}, "error": None, "worker": worker_name(), "reused": []}
    if item.error is not None:
        return record | {"status": "error", "error": item.error}
    os.makedirs(staging_root, exist_ok=True)
    staging = os.path.join(staging_root, f"{secrets.token_hex(6)}-{os.path.basename(item.folder)}")
    os.mkdir(staging)
    start = time.perf_counter()
    try:
        result = runner.run(prompt, overrides={load_key: item.input}, progress=progress, output_dir=staging)
    except ExecutionInterrupted:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    except ValidationFailed as exc:
        record.update(status="invalid", error=str(exc))
    except NodeExecutionError as exc:
        record.update(status="error", error=str(exc))
    except Exception as exc:  # a bug in a node or the runner: recorded for this item, the batch goes on
        record.update(status="error", error=f"internal error ({type(exc).__name__}: {exc})")
    record["seconds"] = round(time.perf_counter() - start, 3)
    if record["status"] != "ok":
        shutil.rmtree(staging, ignore_errors=True)
        return record
    record["outputs"] = [f"{item.folder}/{p}" for p in _files(staging)]
    record["metrics"] = metric_values(result, runner.node_classes)
    record["reused"] = list(result.cached)
    record["staging"] = staging
    return record


def _files(folder: str) -> list[str]:
    found = []
    for here, dirs, files in os.walk(folder):
        dirs[:] = sorted(dirs)
        rel = os.path.relpath(here, folder)
        found += [(name if rel == "." else os.path.join(rel, name)).replace(os.sep, "/") for name in sorted(files)]
    return found


# ----------------------------------------------------------------------------- the driver's record
class Manifest:
    """``manifest.jsonl`` under the out folder: appended (and synced) by the driver only, one line per item."""

    def __init__(self, out: str):
        self.path = os.path.join(out, MANIFEST)

    def latest(self) -> dict[str, dict]:
        records: dict[str, dict] = {}
        if not os.path.exists(self.path):
            return records
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a crash: that item simply runs again
                    continue
                if isinstance(record, dict) and isinstance(record.get("input"), str):
                    records[record["input"]] = record
        return records

    def append(self, record: dict) -> None:
        line = json.dumps(record, default=str) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            if f.tell() and not _ends_with_newline(self.path):
                f.write("\n")  # never glue a record to a line a crash cut short
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


def _ends_with_newline(path: str) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def publish_item(out: str, record: dict, manifest: Manifest) -> dict:
    """Give a finished item its folder (one rename, never over an existing one) and its manifest line."""
    staging = record.pop("staging", None)
    record["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if record["status"] == "ok" and staging is not None:
        final = os.path.join(out, record["folder"])
        if os.path.lexists(final):
            record.update(status="error", outputs=[],
                          error=f"{record['folder']!r} exists already in the out folder and is never replaced")
            shutil.rmtree(staging, ignore_errors=True)
        else:
            with open(os.path.join(staging, ITEM_RECORD), "w", encoding="utf-8") as f:
                json.dump(record, f, default=str)
                f.flush()
                os.fsync(f.fileno())
            os.makedirs(os.path.dirname(final) or out, exist_ok=True)
            os.rename(staging, final)
    manifest.append(record)
    return record


def recovered(out: str, item: Item) -> dict | None:
    """The record of an item whose folder was published but whose manifest line was lost (a crash)."""
    path = os.path.join(out, item.folder, ITEM_RECORD)
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, json.JSONDecodeError):
        return None
    return record if record.get("input") == item.input and record.get("status") == "ok" else None


# ----------------------------------------------------------------------------- the batch
class Batch:
    """One batch: the catalogue, what earlier runs finished, and the driver's publishing of results."""

    def __init__(self, items: list[Item], out: str):
        self.out = os.path.abspath(out)
        os.makedirs(self.out, exist_ok=True)
        self.manifest = Manifest(self.out)
        self.work = os.path.join(self.out, WORK_FOLDER)
        self.items = items
        self.summary = BatchSummary()
        self._lock = None

    def __enter__(self) -> "Batch":
        os.makedirs(self.work, exist_ok=True)
        self._lock = open(os.path.join(self.work, "lock"), "w")
        try:
            if fcntl is not None:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise BatchError(f"another batch is writing to {self.out}; wait for it or choose another --out") from None
        shutil.rmtree(self.staging_root, ignore_errors=True)  # what an earlier, killed run left half-done
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.staging_root, ignore_errors=True)
        self._lock.close()
        shutil.rmtree(self.work, ignore_errors=True)

    @property
    def staging_root(self) -> str:
        return os.path.join(self.work, "staging")

    def pending(self) -> list[Item]:
        """Items still to run: those without an 'ok' record whose folder is there (records lost in a crash
        are taken back from the item's folder)."""
        done = self.manifest.latest()
        todo = []
        for item in self.items:
            record = done.get(item.input)
            if record and record.get("status") == "ok" and os.path.isdir(os.path.join(self.out, item.folder)):
                self.summary.skipped.append(item.input)
                continue
            found = recovered(self.out, item)
            if found is not None:
                self.manifest.append(found | {"recovered": True})
                self.summary.skipped.append(item.input)
                continue
            todo.append(item)
        return todo

    def publish(self, record: dict) -> dict:
        record = publish_item(self.out, record, self.manifest)
        self.summary.records.append(record)
        return record


class LocalInterrupt:
    """What Ctrl-C calls during a local batch: the item in progress stops at its next step, and no further
    item starts (a runner forgets an interrupt when its next prompt starts, as ComfyUI does, so one that
    arrives between two items would otherwise be lost)."""

    def __init__(self, runner):
        self.runner = runner
        self.requested = threading.Event()

    def interrupt(self) -> None:
        self.requested.set()
        self.runner.interrupt()


def run_local(runner, prompt: dict, load_key: str, batch: Batch, items: list[Item], bars=None,
              stop: LocalInterrupt | None = None) -> None:
    """Every item in this process with one runner, so models loaded for the first item serve the rest."""
    from .runner import ExecutionInterrupted

    for item in items:
        if stop is not None and stop.requested.is_set():
            batch.summary.interrupted = True
            return
        if bars is not None:
            bars.start_item(item, len(prompt))
        try:
            record = run_item(runner, prompt, load_key, item, batch.staging_root,
                              progress=bars.event if bars is not None else None)
        except ExecutionInterrupted:
            batch.summary.interrupted = True
            return
        record["attempts"] = 1
        batch.publish(record)
        if bars is not None:
            bars.done_item(record)


# ----------------------------------------------------------------------------- progress and summary
class ProgressBars:
    """A bar over the catalogue and one over the current item's nodes (with the running node's steps)."""

    def __init__(self, total: int, per_item: bool = True, stream=None):
        from tqdm import tqdm

        self._tqdm = tqdm
        self.stream = stream or sys.stderr
        self.items = tqdm(total=total, desc="batch", unit="item", file=self.stream, dynamic_ncols=True)
        self.per_item = per_item
        self.item = None

    def start_item(self, item: Item, nodes: int) -> None:
        if self.per_item:
            self.item = self._tqdm(total=nodes, desc=item.input[-40:], unit="node", leave=False, position=1,
                                   file=self.stream, dynamic_ncols=True)

    def event(self, name: str, data: dict) -> None:
        if self.item is None:
            return
        if name == "execution_cached":
            self.item.update(len(data.get("nodes", [])))
        elif name == "executing":
            self.item.update(1)
        elif name == "progress":
            self.item.set_postfix_str(f"node {data.get('node')}: {data.get('value')}/{data.get('max')}")

    def done_item(self, record: dict) -> None:
        if self.item is not None:
            self.item.close()
            self.item = None
        self.items.update(1)
        if record["status"] != "ok":
            self.items.write(f"{record['input']}: {record['status']}: {record['error']}", file=self.stream)

    def close(self) -> None:
        if self.item is not None:
            self.item.close()
        self.items.close()


def summary_table(summary: BatchSummary) -> str:
    """Plain-text table of this run's items, then the totals (skipped items counted, not listed)."""
    rows = [("input", "status", "seconds", "outputs", "metrics / error")]
    for r in summary.records:
        if r["status"] == "ok":
            note = ", ".join(f"{k}={v:.4g}" for m in r.get("metrics", {}).values() for k, v in m.items())
        else:
            note = (r.get("error") or "").splitlines()[0][:100]
        rows.append((r["input"], r["status"], f"{r['seconds']:.2f}", str(len(r.get("outputs", []))), note))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row[:4], widths)) + "  " + row[4] for row in rows]
    ok = sum(r["status"] == "ok" for r in summary.records)
    total = (f"{len(summary.records)} run: {ok} ok, {len(summary.records) - ok} failed; "
             f"{len(summary.skipped)} done earlier; {summary.seconds:.1f} s")
    if summary.interrupted:
        total += "; interrupted (run the same command again to finish the rest)"
    return "\n".join(lines + [total])
