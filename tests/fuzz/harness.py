"""Seeded, bounded fuzz campaign against the headless runner, the CLI and the pack's readers and writers.

Every case ends in one of four outcomes:

- ``clean``: it worked, or it failed with an error a user can act on (a validation error in ComfyUI's
  shape, or a node error whose message names the node's input);
- ``crash``: an internal exception escaped (TypeError, KeyError, a raw library error, an allocation
  failure, a traceback from the CLI, a hang, a NaN accepted silently, an allowed value that fails);
- ``loss``: a file that existed before changed or vanished, or a partial file was left behind;
- ``escape``: something was read from or written to outside the run's own folders (or a pickle ran code).

Categories: workflow (malformed JSON, both formats), media (corrupt and hostile files), checkpoint (bad
and hostile weights), path (``../``, absolute, NUL, newline, symlinks, FIFOs, devices), interrupt
(``Runner.interrupt()``, SIGINT, SIGTERM during every writer), concurrency (two runs in two threads),
values (NaN/inf and every allowed value of a few widgets).

    python tests/fuzz/harness.py [--long] [--seed N] [--only CATEGORY] [--json report.json]

needs the package importable as ``soundstage`` (PYTHONPATH pointing at a folder holding it). The CI test
(``test_fuzz.py``) runs the short mode in a subprocess; ``SOUNDSTAGE_FUZZ_LONG=1`` runs the long one.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io as _io
import json
import os
import pickle
import random
import re
import resource
import shutil
import signal
import stat
import struct
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/ for media_factory

CLEAN, CRASH, LOSS, ESCAPE = "clean", "crash", "loss", "escape"
CATEGORIES = ("workflow", "media", "checkpoint", "path", "interrupt", "concurrency", "values")
# cases per category: (short, long)
BUDGET = {"workflow": (150, 1800), "media": (40, 400), "checkpoint": (30, 300), "path": (40, 300),
          "interrupt": (16, 120), "concurrency": (4, 40), "values": (20, 160)}
MEMORY_CAP = 6 * 1024 ** 3  # address-space cap of the campaign process: a memory bomb fails, the machine lives
CASE_TIMEOUT = 60.0
NAMED_INPUT = re.compile(r"input '[^']+'")
INTERNAL_WORDS = ("Traceback (most recent call last)",)


# ----------------------------------------------------------------------------- verdicts
class Verdict(Exception):
    def __init__(self, outcome: str, detail: str):
        super().__init__(detail)
        self.outcome, self.detail = outcome, detail


def _named(message: str) -> bool:
    return bool(NAMED_INPUT.search(message))


def judge_exception(exc: BaseException) -> tuple[str, str]:
    from soundstage.headless import runner as runner_mod

    if isinstance(exc, runner_mod.ValidationFailed):
        return CLEAN, "validation failed"
    if isinstance(exc, runner_mod.ExecutionInterrupted):
        return CLEAN, "interrupted"
    if isinstance(exc, runner_mod.NodeExecutionError):
        inner = exc.exception
        text = f"{type(inner).__name__}: {inner}"
        if isinstance(inner, (ValueError, OSError, NotImplementedError)) and _named(str(inner)):
            return CLEAN, "node error"
        return CRASH, f"node {exc.class_type}: {text[:300]}"
    return CRASH, f"uncaught {type(exc).__name__}: {str(exc)[:300]}"


def snapshot(folder: Path) -> dict[str, tuple]:
    out = {}
    if not folder.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            p = os.path.join(dirpath, name)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    digest = hashlib.md5(f.read()).hexdigest()
                out[os.path.relpath(p, folder)] = (st.st_size, digest)
            else:
                out[os.path.relpath(p, folder)] = (stat.S_IFMT(st.st_mode), None)
    return out


def media_seconds(path: str) -> float | None:
    """Decoded length of a media file (audio if it has any, else video), or None when it does not decode."""
    import av

    try:
        with av.open(path) as c:
            if c.streams.audio:
                s = c.streams.audio[0]
                n = sum(f.samples for f in c.decode(s))
                return n / s.codec_context.sample_rate
            if c.streams.video:
                s = c.streams.video[0]
                rate = float(s.average_rate or 25)
                return sum(1 for _ in c.decode(s)) / rate
    except Exception:
        return None
    return None


# ----------------------------------------------------------------------------- a workspace per case
class Case:
    def __init__(self, root: Path, name: str):
        self.dir = root / name
        self.input = self.dir / "input"
        self.output = self.dir / "output"
        self.models = self.dir / "models"
        self.outside = self.dir / "outside"
        for d in (self.input, self.output, self.models, self.outside):
            d.mkdir(parents=True, exist_ok=True)
        (self.outside / "secret.wav").write_bytes(b"")  # filled by fixtures when needed
        self.before_outside: dict = {}
        self.before_output: dict = {}
        self.before_input: dict = {}

    def arm(self) -> None:
        self.before_outside = snapshot(self.outside)
        self.before_output = snapshot(self.output)
        self.before_input = snapshot(self.input)

    def check_files(self, allow_new: bool, expected_seconds: float | None = None) -> tuple[str, str] | None:
        after_outside = snapshot(self.outside)
        if after_outside != self.before_outside:
            new = sorted(set(after_outside) ^ set(self.before_outside)) or ["changed"]
            return ESCAPE, f"outside folder changed: {new[:3]}"
        if snapshot(self.input) != self.before_input:
            return ESCAPE, "input folder changed"
        after = snapshot(self.output)
        for name, sig in self.before_output.items():
            if after.get(name) != sig:
                return LOSS, f"existing output {name} changed or vanished"
        for name in sorted(set(after) - set(self.before_output)):
            path = self.output / name
            if not allow_new:
                return LOSS, f"file left behind by a failed run: {name}"
            if path.is_file() and expected_seconds is not None and not name.startswith("temp"):
                seconds = media_seconds(str(path))
                if seconds is None or seconds < expected_seconds * 0.98:
                    return LOSS, f"partial output {name}: {seconds} s of {expected_seconds}"
        return None


def new_runner(case: Case, **kwargs):
    from soundstage.headless.runner import Runner

    return Runner(input_dir=case.input, output_dir=case.output, models_dir=case.models,
                  nodes={"FuzzSink": FuzzSink}, include_pack=True, **kwargs)


class FuzzSink:
    """An output node that takes anything, so any node's output can end a fuzz graph."""

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802
        return {"required": {"value": ("*",)}}

    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True
    CATEGORY = "fuzz"

    def run(self, value):
        return {}


def run_prompt(case: Case, prompt, *, allow_new=True, expected_seconds=None, runner=None, interrupt_after=None,
               success_required=False):
    """Run ``prompt``, judge the exception (if any) and the files."""
    runner = runner or new_runner(case)
    case.arm()
    timer = None
    if interrupt_after is not None:
        timer = threading.Timer(interrupt_after, runner.interrupt)
        timer.start()
    failed = False
    error_text = ""
    try:
        runner.run(prompt)
        outcome = (CLEAN, "ok")
    except Exception as exc:
        failed = True
        error_text = str(exc) + " / " + str(getattr(exc, "exception", ""))
        outcome = judge_exception(exc)
    finally:
        if timer is not None:
            timer.cancel()
    if success_required and failed and outcome[0] == CLEAN and outcome[1] != "interrupted":
        outcome = (CRASH, f"an allowed value failed: {error_text[:300]}")
    files = case.check_files(allow_new=allow_new or not failed, expected_seconds=expected_seconds)
    return files or outcome


# ----------------------------------------------------------------------------- fixtures (made once)
class Fixtures:
    def __init__(self, root: Path):
        from media_factory import make_audio, make_video

        self.dir = root / "_fixtures"
        self.dir.mkdir(parents=True, exist_ok=True)
        d = self.dir
        self.wav = make_audio(d / "tone.wav", 0.5, 16000)
        self.flac = make_audio(d / "tone.flac", 0.5, 16000)
        self.long_wav = make_audio(d / "long.wav", 120.0, 48000, channels=2)
        self.mp4 = make_video(d / "clip.mp4", 0.5, 10, (32, 24), audio="tone")
        self.mkv = make_video(d / "clip.mkv", 0.5, 10, (32, 24), audio="tone", audio_codec="flac")
        self.big = d / "black4k.mp4"  # few KB on disk, GBs decoded as float32
        _black_video(self.big, 3840, 2160, 120)
        self.png = d / "img.png"
        from PIL import Image

        Image.new("RGB", (8, 8), (10, 20, 30)).save(self.png)

    def copy(self, src: Path, dst: Path) -> Path:
        shutil.copyfile(src, dst)
        return dst


def _black_video(path: Path, width: int, height: int, frames: int) -> None:
    import av
    import numpy as np

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = {"preset": "ultrafast", "crf": "51"}
        frame = av.VideoFrame.from_ndarray(np.zeros((height, width, 3), np.uint8), format="rgb24")
        for i in range(frames):
            frame.pts = i
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)


# ----------------------------------------------------------------------------- workflow documents
JUNK = [None, 0, -1, 1.5, "x", "", [], {}, [1, 2, 3], {"a": 1}, True, [None], ["1", "0"], [["1", 0]],
        {"class_type": 1}, "../../etc/passwd", 10 ** 30, [[], []], {"inputs": None}]


def _api_seed() -> dict:
    return {
        "1": {"class_type": "SoundstageSynthClip", "inputs": {"seed": 1, "seconds": 0.5, "size": 32, "fps": 4,
                                                              "language": "en", "speaker": "spk0", "line": 0,
                                                              "balls": 1, "speech": True, "sample_rate": 8000}},
        "2": {"class_type": "SoundstageSaveAudio", "inputs": {"audio": ["1", 1], "filename_prefix": "fz/a",
                                                              "format": "wav", "bitrate_kbps": 64}},
        "3": {"class_type": "PrimitiveFloat", "inputs": {"value": 1.0}},
        "4": {"class_type": "FuzzSink", "inputs": {"value": ["3", 0]}},
    }


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))


def _mutate(doc, rng: random.Random):
    import copy

    doc = copy.deepcopy(doc)
    for _ in range(rng.randint(1, 3)):
        paths = list(_paths(doc))
        path = rng.choice(paths)
        if not path:
            return rng.choice(JUNK + ["\"a.json\"", [doc], {"prompt": doc}, {"nodes": doc}])
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        op = rng.random()
        if op < 0.55:
            parent[key] = rng.choice(JUNK)
        elif op < 0.8:
            if isinstance(parent, dict):
                del parent[key]
            else:
                parent.pop(key)
        elif isinstance(parent, dict):
            parent[rng.choice(["extra", "inputs", "class_type", "links", "nodes", "-10", "id"])] = rng.choice(JUNK)
        else:
            parent.insert(key, rng.choice(JUNK))
    return doc


def _chain(n: int, ui: bool) -> dict:
    if not ui:
        prompt = {"0": {"class_type": "PrimitiveFloat", "inputs": {"value": 1.0}}}
        for i in range(1, n):
            prompt[str(i)] = {"class_type": "FuzzSink" if i == n - 1 else "PrimitiveFloat",
                              "inputs": {"value": [str(i - 1), 0]}}
        return prompt
    nodes, links = [], []
    for i in range(n):
        node = {"id": i + 1, "type": "Reroute" if 0 < i < n - 1 else ("PrimitiveFloat" if i == 0 else "FuzzSink"),
                "mode": 0, "inputs": [], "outputs": [], "widgets_values": [1.0] if i == 0 else []}
        if i:
            node["inputs"] = [{"name": "value" if i == n - 1 else "", "type": "*", "link": i}]
            links.append([i, i, 0, i + 1, 0, "*"])
        nodes.append(node)
    return {"last_node_id": n, "last_link_id": n - 1, "nodes": nodes, "links": links, "version": 0.4}


def cli_call(argv: list[str]) -> tuple[int | None, str, str]:
    from soundstage import cli

    out, err = _io.StringIO(), _io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = cli.main(argv)
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 2
        except BaseException:
            traceback.print_exc()
            rc = None
    return rc, out.getvalue(), err.getvalue()


def judge_cli(rc, out: str, err: str) -> tuple[str, str]:
    if rc is None or any(w in out + err for w in INTERNAL_WORDS):
        return CRASH, "CLI traceback: " + (err or out).strip().splitlines()[-1][:200] if (err or out).strip() else "?"
    if rc in (0, 2):
        return CLEAN, f"rc {rc}"
    if rc == 1:
        try:
            body = json.loads(out)
            assert isinstance(body, dict) and isinstance(body.get("error"), dict) and "node_errors" in body
        except Exception:
            return CRASH, f"rc 1 without ComfyUI's error JSON: {(err or out)[:200]!r}"
        return CLEAN, "invalid"
    return CRASH, f"rc {rc}: {(err or out).strip()[-200:]!r}"


def workflow_case(ctx, case: Case, rng: random.Random, index: int):
    kind = index % 6
    if kind == 0 and index % 60 == 0:  # long chains, both formats
        doc = _chain(1200, ui=bool(index % 120))
        try:
            runner = new_runner(case)
            runner.validate(doc)
            return CLEAN, "chain validated"
        except Exception as exc:
            return judge_exception(exc)
    seeds = ctx.workflow_seeds
    doc = _mutate(rng.choice(seeds), rng)
    path = case.dir / "wf.json"
    if kind == 5:  # a JSON document that is a string naming another (existing) file
        (case.dir / "other.json").write_text(json.dumps(_api_seed()))
        doc = str(case.dir / "other.json")
    try:
        text = json.dumps(doc)
    except (TypeError, ValueError):
        text = "{"
    if kind == 4 and rng.random() < 0.5:
        text = text[: rng.randint(0, len(text))]
    path.write_text(text)
    case.arm()
    rc, out, err = cli_call(["validate", str(path), "--input-dir", str(case.input), "--output-dir",
                             str(case.output), "--models-dir", str(case.models)])
    verdict = judge_cli(rc, out, err)
    if verdict[0] == CLEAN and kind == 5 and rc == 0:
        return ESCAPE, "a JSON string document was taken as a path to another file"
    return case.check_files(allow_new=False) or verdict


# ----------------------------------------------------------------------------- media
def _wav_header(fmt: int, channels: int, rate: int, bits: int, data: bytes) -> bytes:
    block = max(1, channels * max(bits, 8) // 8)
    fmt_chunk = struct.pack("<HHIIHH", fmt, channels, rate, (rate * block) & 0xFFFFFFFF, block & 0xFFFF, bits)
    return (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt_chunk
            + b"data" + struct.pack("<I", len(data)) + data)


def _hostile_media(fx: Fixtures, rng: random.Random, folder: Path) -> tuple[Path, str]:
    """(file, description): one corrupt or hostile media file."""
    kind = rng.randrange(9)
    src = rng.choice([fx.wav, fx.flac, fx.mp4, fx.mkv])
    data = src.read_bytes()
    if kind == 0:
        name, blob = "trunc" + src.suffix, data[: rng.randint(0, len(data))]
    elif kind == 1:
        b = bytearray(data)
        for _ in range(rng.randint(1, 20)):
            b[rng.randrange(min(len(b), 256))] ^= 1 << rng.randrange(8)
        name, blob = "flip" + src.suffix, bytes(b)
    elif kind == 2:
        name, blob = "junk" + src.suffix, bytes(rng.randrange(256) for _ in range(rng.randint(0, 2048)))
    elif kind == 3:
        name, blob = "fmt.wav", _wav_header(rng.choice([0x1234, 0x0055, 0xFFFE, 3, 1]), rng.choice([0, 1, 2, 300]),
                                            rng.choice([0, 1, 8000, 2 ** 31 - 1]), rng.choice([0, 1, 16, 64]),
                                            bytes(64))
    elif kind == 4:
        name, blob = "empty" + src.suffix, b""
    elif kind == 5:
        name, blob = "text.mp4", b"hello, not a video\n" * 10
    elif kind == 6:
        name, blob = "big.mp4", fx.big.read_bytes()
    elif kind == 7:
        name, blob = "audio_as_video.mp4", fx.wav.read_bytes()
    else:
        b = bytearray(data)
        cut = rng.randrange(len(b))
        b[cut:cut + 64] = bytes(64)
        name, blob = "zeroed" + src.suffix, bytes(b)
    path = folder / name
    path.write_bytes(blob)
    return path, f"{name} ({kind})"


def media_case(ctx, case: Case, rng: random.Random, index: int):
    path, _ = _hostile_media(ctx.fx, rng, case.input)
    name = path.name
    choice = index % 5
    if choice == 0:
        prompt = {"1": {"class_type": "SoundstageLoadVideo", "inputs": _defaults("SoundstageLoadVideo", file=name)},
                  "2": {"class_type": "FuzzSink", "inputs": {"value": ["1", 1]}}}
        if rng.random() < 0.3:
            prompt["1"]["inputs"].update(resize="stretch", width=8192, height=8192)
    elif choice == 1:
        prompt = {"1": {"class_type": "SoundstageLoadAudio", "inputs": _defaults("SoundstageLoadAudio", file=name)},
                  "2": {"class_type": "FuzzSink", "inputs": {"value": ["1", 0]}}}
    elif choice == 2:
        prompt = {"1": {"class_type": "LoadAudio", "inputs": {"audio": name}},
                  "2": {"class_type": "FuzzSink", "inputs": {"value": ["1", 0]}}}
    elif choice == 3:
        prompt = {"1": {"class_type": "LoadVideo", "inputs": {"file": name}},
                  "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
                  "3": {"class_type": "FuzzSink", "inputs": {"value": ["2", 0]}}}
    else:
        prompt = {"1": {"class_type": "SoundstageLoadVideo", "inputs": _defaults("SoundstageLoadVideo", file=name)},
                  "2": {"class_type": "SoundstageMux", "inputs": _defaults("SoundstageMux", video=["1", 0],
                                                                           track_1=["1", 2],
                                                                           filename_prefix="fz/mux")}}
    return run_prompt(case, prompt)


_DEFAULTS: dict[str, dict] = {}


def _defaults(class_type: str, **override) -> dict:
    if class_type not in _DEFAULTS:
        from soundstage.headless.registry import build_registry
        from soundstage.headless.schema import input_specs

        cls = build_registry(include_pack=True)[class_type]
        values = {}
        for spec in input_specs(cls):
            if not spec.is_widget or spec.category != "required":
                continue
            if "default" in spec.options:
                values[spec.name] = spec.options["default"]
            elif spec.combo_options:
                values[spec.name] = spec.combo_options[0]
        _DEFAULTS[class_type] = values
    return dict(_DEFAULTS[class_type]) | override


# ----------------------------------------------------------------------------- checkpoints
LOADERS = {  # node -> (file input, folders it resolves from)
    "SoundstageLoadMelVAE": ("vae_name", ["soundstage/mmaudio", "vae"]),
    "SoundstageLoadVocoder": ("vocoder_name", ["soundstage/mmaudio", "vae"]),
    "SoundstageLoadMMDiT": ("model_name", ["soundstage/mmaudio"]),
    "SoundstageLoadDualDub": ("ckpt_name", ["soundstage/dualdub"]),
    "SoundstageLoadLTX2AVModel": ("ckpt_name", ["soundstage/ltx2"]),
    "SoundstageLoadLTX2TextEncoder": ("text_encoder", ["text_encoders"]),
    "SoundstageLoadLTX2LatentUpsampler": ("upscale_model", ["latent_upscale_models"]),
    "SoundstageMTVLoadModel": ("ckpt_name", ["soundstage/mtv"]),
    "SoundstageCogVideoXVAELoader": ("vae_name", ["vae"]),
    "SoundstageOviLoadModel": ("ckpt_name", ["soundstage/ovi"]),
    "SoundstageOviLoadTextEncoder": ("text_encoder", ["text_encoders"]),
    "SoundstageWanVAELoader": ("vae_name", ["vae"]),
    "SoundstageLoadMMDiTVisualEncoders": ("clip_name", ["clip_vision"]),
}


class _Pwn:
    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def _safetensors(header: dict | bytes, data: bytes = b"", length: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def _bad_checkpoint(case: Case, rng: random.Random, pwned: Path) -> tuple[str, bytes | None, str]:
    """(file name, content or None for a folder made here, description)."""
    import torch

    kind = rng.randrange(11)
    if kind == 0:
        return "pwn.pt", pickle.dumps({"state_dict": _Pwn(str(pwned))}), "raw pickle that runs code"
    if kind == 1:
        buf = _io.BytesIO()
        torch.save({"state_dict": {"w": torch.zeros(1)}, "x": _Pwn(str(pwned))}, buf)
        return rng.choice(["pwn.ckpt", "pwn.pth", "pwn.bin"]), buf.getvalue(), "torch zip pickle that runs code"
    if kind == 2:
        return "bomb.safetensors", _safetensors({"w": {"dtype": "F32", "shape": [1 << 20, 1 << 20],
                                                       "data_offsets": [0, 4]}}, bytes(4)), "shape bomb"
    if kind == 3:
        return "hdr.safetensors", _safetensors(b"{}", length=1 << 60), "header length bomb"
    if kind == 4:
        meta = {"__metadata__": {"config": json.dumps({"vision_cfg": {"width": 16384, "layers": 48,
                                                                      "patch_size": 14, "image_size": 224}}),
                                 "open_clip_config": json.dumps({"model_cfg": {"vision_cfg": {"width": 16384}}})},
                "visual.conv1.weight": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}
        return "meta.safetensors", _safetensors(meta, bytes(4)), "metadata config bomb"
    if kind == 5:
        return rng.choice(["empty.safetensors", "empty.pth", "empty.pt"]), b"", "empty file"
    if kind == 6:
        return "junk.safetensors", bytes(rng.randrange(256) for _ in range(rng.randint(8, 400))), "random bytes"
    if kind == 7:
        from safetensors.torch import save

        sd = {f"k{i}": torch.zeros(2, 2) for i in range(3)}
        return "wrongkeys.safetensors", save(sd), "wrong keys"
    if kind == 8:
        buf = _io.BytesIO()
        torch.save({"w": torch.zeros(2, 2, dtype=torch.complex64)}, buf)
        return "complex.pt", buf.getvalue(), "complex weights"
    if kind == 9:
        return "t5folder", None, "a T5 folder"
    buf = _io.BytesIO()
    torch.save([1, 2, "x"], buf)
    return "list.pt", buf.getvalue(), "not a dict"


def checkpoint_case(ctx, case: Case, rng: random.Random, index: int):
    node = sorted(LOADERS)[index % len(LOADERS)]
    input_name, folders = LOADERS[node]
    pwned = case.outside / "pwned"
    name, blob, what = _bad_checkpoint(case, rng, pwned)
    for folder in folders:
        target = case.models / folder
        target.mkdir(parents=True, exist_ok=True)
        if blob is None:
            sub = target / name
            sub.mkdir(exist_ok=True)
            (sub / "config.json").write_text(json.dumps({"model_type": "t5", "d_model": 8}))
            (sub / "model.safetensors").write_bytes(_safetensors({}, b""))
        else:
            (target / name).write_bytes(blob)
    inputs = _defaults(node)
    inputs[input_name] = name
    prompt = {"1": {"class_type": node, "inputs": inputs}, "2": {"class_type": "FuzzSink", "inputs": {"value": ["1", 0]}}}
    verdict = run_prompt(case, prompt)
    if pwned.exists():
        return ESCAPE, f"{node}: {what} ran code"
    if verdict[0] == CRASH:
        return CRASH, f"{what}: {verdict[1]}"
    return verdict


# ----------------------------------------------------------------------------- paths
READERS = [("SoundstageLoadAudio", "file", 0), ("SoundstageLoadVideo", "file", 1), ("LoadAudio", "audio", 0),
           ("LoadVideo", "file", 0), ("LoadImage", "image", 0)]
WRITERS = ["SoundstageSaveAudio", "SaveAudio", "SaveAudioMP3", "SaveAudioOpus", "SoundstageMux", "SaveVideo"]


def _reader_prompt(class_type: str, input_name: str, slot: int, value: str) -> dict:
    inputs = _defaults(class_type, **{input_name: value}) if class_type.startswith("Soundstage") else {input_name: value}
    prompt = {"1": {"class_type": class_type, "inputs": inputs}}
    if class_type == "LoadVideo":
        prompt["2"] = {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}}
        prompt["3"] = {"class_type": "FuzzSink", "inputs": {"value": ["2", 0]}}
    else:
        prompt["2"] = {"class_type": "FuzzSink", "inputs": {"value": ["1", slot]}}
    return prompt


def _writer_prompt(class_type: str, prefix: str, audio_src=("9", 0)) -> dict:
    prompt = {"9": {"class_type": "SoundstageLoadAudio", "inputs": _defaults("SoundstageLoadAudio", file="in.wav")}}
    if class_type == "SoundstageSaveAudio":
        inputs = _defaults(class_type, audio=list(audio_src), filename_prefix=prefix, format="flac")
    elif class_type == "SoundstageMux":
        prompt["8"] = {"class_type": "SoundstageLoadVideo", "inputs": _defaults("SoundstageLoadVideo", file="in.mp4")}
        inputs = _defaults(class_type, video=["8", 0], track_1=list(audio_src), filename_prefix=prefix)
    elif class_type == "SaveVideo":
        prompt["8"] = {"class_type": "LoadVideo", "inputs": {"file": "in.mp4"}}
        inputs = {"video": ["8", 0], "filename_prefix": prefix, "format": "auto", "codec": "auto"}
    else:
        inputs = {"audio": list(audio_src), "filename_prefix": prefix}
        if class_type != "SaveAudio":
            inputs["quality"] = "128k"
    prompt["1"] = {"class_type": class_type, "inputs": inputs}
    return prompt


def _outside_read(case: Case, fx: Fixtures, rng: random.Random, kind: int) -> tuple[str, bool]:
    """(name to give a reader, whether reading it succeeds only by leaving the input folder)."""
    secret = case.outside / "secret.wav"
    fx.copy(fx.wav, secret)
    fx.copy(fx.png, case.outside / "secret.png")
    fx.copy(fx.mp4, case.outside / "secret.mp4")
    ext = rng.choice([".wav", ".png", ".mp4"])
    target = case.outside / f"secret{ext}"
    if kind == 0:
        return f"../outside/secret{ext}", True
    if kind == 1:
        return str(target), True
    if kind == 2:
        (case.input / f"link{ext}").symlink_to(target)
        return f"link{ext}", True
    if kind == 3:
        (case.input / "dirlink").symlink_to(case.outside, target_is_directory=True)
        return f"dirlink/secret{ext}", True
    if kind == 4:
        return f"../outside/secret{ext} [input]", True
    if kind == 5:
        return f"../../{case.dir.name}/outside/secret{ext} [output]", True
    if kind == 6:
        (case.input / f"zero{ext}").symlink_to("/dev/zero")
        return f"zero{ext}", False
    if kind == 7:
        os.mkfifo(case.input / f"fifo{ext}")
        return f"fifo{ext}", False
    if kind == 8:
        return "/dev/zero", False
    if kind == 9:
        return f"in{ext}\x00.txt", False
    return f"in{ext}\nx", False


def _with_deadline(fn, seconds: float, unblock=None):
    result: dict = {}

    def target():
        try:
            result["value"] = fn()
        except BaseException as exc:  # reported by the caller
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        if unblock is not None:
            unblock()
        thread.join(30)
        return None
    if "error" in result:
        raise result["error"]
    return result["value"]


def _release_fifos(folder: Path) -> None:
    for p in folder.iterdir():
        if p.is_fifo():
            with contextlib.suppress(OSError):
                fd = os.open(p, os.O_WRONLY | os.O_NONBLOCK)
                os.close(fd)


def path_case(ctx, case: Case, rng: random.Random, index: int):
    fx = ctx.fx
    fx.copy(fx.wav, case.input / "in.wav")
    fx.copy(fx.mp4, case.input / "in.mp4")
    fx.copy(fx.png, case.input / "in.png")
    if index % 2 == 0:  # readers
        class_type, input_name, slot = READERS[(index // 2) % len(READERS)]
        kind = rng.randrange(11)
        name, escapes = _outside_read(case, fx, rng, kind)
        prompt = _reader_prompt(class_type, input_name, slot, name)
        verdict = _with_deadline(lambda: run_prompt(case, prompt), 20, lambda: _release_fifos(case.input))
        if verdict is None:
            return CRASH, f"{class_type} hung on {name!r}"
        if verdict == (CLEAN, "ok") and escapes:
            return ESCAPE, f"{class_type} read {name!r} from outside the input folder"
        if verdict == (CLEAN, "ok") and kind in (6, 7, 8):
            return CRASH, f"{class_type} read a special file {name!r}"
        return verdict
    # writers
    class_type = WRITERS[(index // 2) % len(WRITERS)]
    kind = rng.randrange(8)
    ext = {"SoundstageSaveAudio": "flac", "SaveAudio": "flac", "SaveAudioMP3": "mp3", "SaveAudioOpus": "opus",
           "SoundstageMux": "mp4", "SaveVideo": "mp4"}[class_type]
    victim = case.output / f"victim.{ext}"
    victim.write_bytes(b"precious")
    for name in (f"fz_00001_.{ext}", f"_00001_.{ext}", f"fz/_00001_.{ext}"):
        (case.output / name).parent.mkdir(parents=True, exist_ok=True)
        (case.output / name).write_bytes(b"precious")
    prefixes = [f"victim.{ext}\x00", "", "fz/", "../outside/x", str(case.outside / "x"), "a\nb", "fz/../../outside/y",
                "link/x", "fz"]
    if kind == 7:
        (case.output / "link").symlink_to(case.outside, target_is_directory=True)
        prefix = "link/x"
    else:
        prefix = prefixes[kind]
    prompt = _writer_prompt(class_type, prefix)
    verdict = run_prompt(case, prompt)
    if prefix in ("", "fz/") and verdict == (CLEAN, "ok"):  # must have written a new file, twice
        verdict = run_prompt(case, prompt)
    return verdict


# ----------------------------------------------------------------------------- interruption
def interrupt_case(ctx, case: Case, rng: random.Random, index: int):
    fx = ctx.fx
    fx.copy(fx.long_wav, case.input / "in.wav")
    from media_factory import make_video

    if not (ctx.root / "_fixtures" / "long.mp4").exists():
        make_video(ctx.root / "_fixtures" / "long.mp4", 8.0, 25, (320, 240))
    fx.copy(ctx.root / "_fixtures" / "long.mp4", case.input / "in.mp4")
    class_type = WRITERS[index % len(WRITERS)]
    how = (index // len(WRITERS)) % 3
    prompt = _writer_prompt(class_type, "fz/out")
    expected = 120.0 if class_type not in ("SaveVideo", "SoundstageMux") else 8.0
    if class_type == "SoundstageMux":
        prompt["1"]["inputs"]["align"] = "video"
    if how == 0:
        delay = rng.uniform(0.05, 1.5)
        return run_prompt(case, prompt, expected_seconds=expected, interrupt_after=ctx.node_start_delay + delay)
    # SIGINT / SIGTERM to a CLI process (forked, so torch is not imported again)
    wf = case.dir / "wf.json"
    wf.write_text(json.dumps(prompt))
    sig = signal.SIGINT if how == 1 else signal.SIGTERM
    case.arm()
    rc, text = ctx.zygote.run(["run", str(wf), "--input-dir", str(case.input), "--output-dir", str(case.output),
                               "--models-dir", str(case.models)], sig, rng.uniform(0.05, 1.5), case.dir)
    files = case.check_files(allow_new=True, expected_seconds=expected)
    if files:
        return files
    if "Traceback" in text:
        return CRASH, f"CLI traceback on {sig.name}: {text.strip().splitlines()[-1][:150]}"
    if rc is not None and rc < 0:
        return CRASH, f"CLI killed by {signal.Signals(-rc).name} (no clean exit)"
    return CLEAN, f"rc {rc}"


class Zygote:
    """A process forked before any case runs, while the campaign has one thread; it forks each signalled CLI
    run. Forking the campaign itself later would copy locks held by its other threads into the child."""

    def __init__(self):
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(req_w)
            os.close(resp_r)
            self._serve(os.fdopen(req_r, "r"), os.fdopen(resp_w, "w"))
        os.close(req_r)
        os.close(resp_w)
        self.pid = pid
        self.requests, self.responses = os.fdopen(req_w, "w"), os.fdopen(resp_r, "r")

    @staticmethod
    def _serve(requests, responses) -> None:
        code = 0
        try:
            from soundstage import cli  # noqa: F401  (imported once, before the forks)
            from soundstage.headless.registry import build_registry

            build_registry(include_pack=True)
            for line in requests:
                argv, sig, delay, workdir = json.loads(line)
                try:
                    rc, text = _cli_in_child(argv, signal.Signals(sig), delay, Path(workdir))
                except Exception as exc:  # reported as a hang-like failure of the case
                    rc, text = None, f"Traceback: zygote failed: {exc!r}"
                responses.write(json.dumps([rc, text[-4000:]]) + "\n")
                responses.flush()
        except BaseException:
            code = 1
        finally:
            os._exit(code)

    def run(self, argv, sig, delay: float, workdir: Path) -> tuple[int | None, str]:
        self.requests.write(json.dumps([argv, int(sig), delay, str(workdir)]) + "\n")
        self.requests.flush()
        line = self.responses.readline()
        if not line:
            return None, "Traceback: the zygote died"
        rc, text = json.loads(line)
        return rc, text

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.requests.close()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


def _cli_in_child(argv, sig, delay: float, workdir: Path) -> tuple[int | None, str]:
    log = workdir / "cli.log"
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: the CLI as `python -m soundstage` would run it
        code = 1
        try:
            os.close(ready_r)
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            from soundstage import cli

            sys.argv = ["soundstage"] + argv
            install = cli.SIGNALS.install

            def install_then_report_ready():
                install()
                os.write(ready_w, b"1")
                os.close(ready_w)

            cli.SIGNALS.install = install_then_report_ready
            try:
                code = cli.main(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except KeyboardInterrupt:
                traceback.print_exc()
                sys.stderr.flush()
                os.kill(os.getpid(), signal.SIGINT)  # what the interpreter does after an unhandled ^C
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                os.kill(os.getpid(), signal.SIGINT)
            except BaseException:
                traceback.print_exc()
                code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code if isinstance(code, int) else 1)
    # The delay counts from the moment the CLI has its signal handlers: a signal still inside fork() or the
    # child's set-up would test the interpreter's start-up (an at-fork hook swallows it; a ^C there prints the
    # interpreter's own traceback, as for any Python program).
    os.close(ready_w)
    with os.fdopen(ready_r, "rb") as ready:
        ready.read(1)
    time.sleep(delay)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.time() + 60
    status = None
    while time.time() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return None, "Traceback: hung after the signal"
    rc = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    return rc, log.read_text(errors="replace") if log.exists() else ""


# ----------------------------------------------------------------------------- concurrency
def concurrency_case(ctx, case: Case, rng: random.Random, index: int):
    fx = ctx.fx
    a, b = Case(case.dir, "a"), Case(case.dir, "b")
    shared_output = index % 2 == 1
    if shared_output:
        b.output = a.output
    fx.copy(fx.long_wav, a.input / "in.wav")
    fx.copy(fx.wav, b.input / "other.wav")
    fx.copy(fx.wav, b.input / "in.wav")
    runner_a, runner_b = new_runner(a), new_runner(b)
    prompt_a = _writer_prompt("SoundstageSaveAudio", "same/x")
    prompt_b = _writer_prompt("SoundstageSaveAudio", "same/x")
    prompt_b["9"]["inputs"]["file"] = "other.wav" if index % 4 == 2 else "in.wav"
    prompt_a["9"]["inputs"]["file"] = "in.wav"
    results: dict = {}
    interrupt_a = index % 4 == 0

    def go(name, runner, prompt):
        try:
            results[name] = runner.run(prompt)
        except Exception as exc:
            results[name] = exc

    for c in (a, b):
        c.arm()
    threads = [threading.Thread(target=go, args=("a", runner_a, prompt_a)),
               threading.Thread(target=go, args=("b", runner_b, prompt_b))]
    for t in threads:
        t.start()
    if interrupt_a:
        time.sleep(ctx.node_start_delay + 0.05)
        runner_a.interrupt()
    for t in threads:
        t.join(120)
    from soundstage.headless.runner import ExecutionInterrupted

    for name in ("a", "b"):
        value = results.get(name)
        if isinstance(value, Exception):
            if name == "a" and interrupt_a and isinstance(value, ExecutionInterrupted):
                continue
            if name == "b" and isinstance(value, ExecutionInterrupted):
                return LOSS, "interrupting run a stopped run b"
            outcome = judge_exception(value)
            if outcome[0] != CLEAN:
                return outcome
            return CRASH, f"run {name} failed: {str(value)[:200]}"
    files_a = sorted(p for p in a.output.rglob("*.flac"))
    files_b = sorted(p for p in b.output.rglob("*.flac")) if not shared_output else []
    expected_a = 0 if interrupt_a and isinstance(results.get("a"), Exception) else 1
    if shared_output:
        if len(files_a) != expected_a + 1:
            return LOSS, f"two runs, one folder: {len(files_a)} files for {expected_a + 1} saves"
    else:
        if len(files_b) != 1 or len(files_a) != expected_a:
            return ESCAPE, f"files in the wrong folder: a has {len(files_a)}, b has {len(files_b)}"
        seconds = media_seconds(str(files_b[0]))
        if seconds is None or seconds > 5:
            return ESCAPE, "run b read run a's input"
    return CLEAN, "ok"


# ----------------------------------------------------------------------------- values
def values_case(ctx, case: Case, rng: random.Random, index: int):
    fx = ctx.fx
    fx.copy(fx.wav, case.input / "in.wav")
    fx.copy(fx.mp4, case.input / "in.mp4")
    kind = index % 4
    bad = rng.choice([float("nan"), float("inf"), float("-inf")])
    if kind == 0:  # NaN/inf into FLOAT widgets
        node, name = rng.choice([("SoundstageLoadAudio", "start_time"), ("SoundstageMixTracks", "target_lufs"),
                                 ("SoundstageMixTracks", "gain_1"), ("SoundstageMux", "fps"),
                                 ("SoundstageLoadVideo", "start_time"), ("PrimitiveFloat", "value")])
        prompt = {"9": {"class_type": "SoundstageLoadAudio", "inputs": _defaults("SoundstageLoadAudio", file="in.wav")}}
        if node == "SoundstageLoadAudio":
            prompt["9"]["inputs"][name] = bad
            prompt["1"] = {"class_type": "FuzzSink", "inputs": {"value": ["9", 0]}}
        elif node == "SoundstageMixTracks":
            prompt["1"] = {"class_type": node, "inputs": _defaults(node, track_1=["9", 0], **{name: bad})}
            prompt["2"] = {"class_type": "FuzzSink", "inputs": {"value": ["1", 0]}}
        elif node == "SoundstageMux":
            prompt["8"] = {"class_type": "SoundstageLoadVideo", "inputs": _defaults("SoundstageLoadVideo", file="in.mp4")}
            prompt["1"] = {"class_type": node, "inputs": _defaults(node, images=["8", 1], track_1=["9", 0],
                                                                   filename_prefix="fz/v", **{name: bad})}
        elif node == "SoundstageLoadVideo":
            prompt["1"] = {"class_type": node, "inputs": _defaults(node, file="in.mp4", **{name: bad})}
            prompt["2"] = {"class_type": "FuzzSink", "inputs": {"value": ["1", 1]}}
        else:
            prompt["1"] = {"class_type": node, "inputs": {"value": bad}}
            prompt["2"] = {"class_type": "FuzzSink", "inputs": {"value": ["1", 0]}}
        case.arm()
        try:
            new_runner(case).validate(prompt)
        except Exception as exc:
            return judge_exception(exc)
        return CRASH, f"{node}.{name}={bad} passed validation"
    # every allowed value works: Mix Tracks channels into Mux / Save Audio, Load Audio channels
    channels = rng.randint(1, 8)
    prompt = {"9": {"class_type": "SoundstageLoadAudio", "inputs": _defaults("SoundstageLoadAudio", file="in.wav")},
              "1": {"class_type": "SoundstageMixTracks", "inputs": _defaults("SoundstageMixTracks", track_1=["9", 0],
                                                                            channels=channels)}}
    if kind == 1:
        prompt["8"] = {"class_type": "SoundstageLoadVideo", "inputs": _defaults("SoundstageLoadVideo", file="in.mp4")}
        prompt["2"] = {"class_type": "SoundstageMux", "inputs": _defaults(
            "SoundstageMux", video=["8", 0], track_1=["1", 0], filename_prefix="fz/m",
            container=rng.choice(["mp4", "mkv"]))}
        if prompt["2"]["inputs"]["container"] == "mkv":
            prompt["2"]["inputs"]["audio_codec"] = rng.choice(["aac", "opus", "flac"])
    elif kind == 2:
        prompt["2"] = {"class_type": "SoundstageSaveAudio", "inputs": _defaults(
            "SoundstageSaveAudio", audio=["1", 0], filename_prefix="fz/s",
            format=rng.choice(["wav", "wav_24bit", "wav_float", "flac", "opus", "mp3"]))}
    else:
        prompt["9"]["inputs"]["channels"] = channels
        prompt["2"] = {"class_type": rng.choice(["SaveAudio", "SaveAudioOpus", "SaveAudioMP3"]),
                       "inputs": {"audio": ["9", 0], "filename_prefix": "fz/c"}}
        if prompt["2"]["class_type"] != "SaveAudio":
            prompt["2"]["inputs"]["quality"] = "128k"
            return run_prompt(case, prompt, success_required=channels <= 2)
    return run_prompt(case, prompt, success_required=True)


# ----------------------------------------------------------------------------- campaign
GENERATORS = {"workflow": workflow_case, "media": media_case, "checkpoint": checkpoint_case, "path": path_case,
              "interrupt": interrupt_case, "concurrency": concurrency_case, "values": values_case}


class Context:
    def __init__(self, root: Path):
        self.root = root
        self.fx = Fixtures(root)
        self.workflow_seeds = [_api_seed(), {"prompt": _api_seed()}]
        workflows = HERE.parents[1] / "workflows"
        for p in sorted(workflows.glob("*.json"))[:6]:
            self.workflow_seeds.append(json.loads(p.read_text()))
        self.node_start_delay = 0.0


def run_campaign(seed: int = 0, long: bool = False, only: list[str] | None = None, root: Path | None = None,
                 scale: float = 1.0, verbose: bool = False) -> dict:
    import torch

    torch.set_num_threads(1)
    zygote = Zygote() if not only or "interrupt" in only else None  # first, while this process has one thread
    own_root = root is None
    root = Path(root or tempfile.mkdtemp(prefix="soundstage-fuzz-"))
    ctx = Context(root)
    ctx.zygote = zygote
    counts: dict[str, Counter] = defaultdict(Counter)
    examples: dict[str, list[str]] = defaultdict(list)
    started = time.time()
    try:
        for category in CATEGORIES:
            if only and category not in only:
                continue
            n = max(1, int(BUDGET[category][1 if long else 0] * scale))
            for index in range(n):
                rng = random.Random(f"{seed}-{category}-{index}")
                case = Case(root, f"{category}-{index}")
                try:
                    outcome, detail = GENERATORS[category](ctx, case, rng, index)
                except Verdict as v:
                    outcome, detail = v.outcome, v.detail
                except BaseException as exc:  # a crash of the code under test that escaped the runner
                    if isinstance(exc, KeyboardInterrupt):
                        raise
                    outcome, detail = CRASH, f"harness saw {type(exc).__name__}: {str(exc)[:200]}"
                counts[category][outcome] += 1
                if outcome != CLEAN and len(examples[category]) < 12:
                    examples[category].append(f"[{index}] {outcome}: {detail}")
                if verbose and outcome != CLEAN:
                    print(f"{category}[{index}] {outcome}: {detail}", flush=True)
                shutil.rmtree(case.dir, ignore_errors=True)
    finally:
        if zygote is not None:
            zygote.close()
        if own_root:
            shutil.rmtree(root, ignore_errors=True)
    report = {"seed": seed, "long": long, "seconds": round(time.time() - started, 1),
              "counts": {c: {k: counts[c][k] for k in (CLEAN, CRASH, LOSS, ESCAPE)} for c in counts},
              "examples": dict(examples)}
    report["total"] = {k: sum(v[k] for v in report["counts"].values()) for k in (CLEAN, CRASH, LOSS, ESCAPE)}
    return report


def format_report(report: dict) -> str:
    lines = [f"{'category':12s} {'clean':>6s} {'crash':>6s} {'loss':>6s} {'escape':>6s}"]
    for category, c in report["counts"].items():
        lines.append(f"{category:12s} {c[CLEAN]:6d} {c[CRASH]:6d} {c[LOSS]:6d} {c[ESCAPE]:6d}")
    t = report["total"]
    lines.append(f"{'total':12s} {t[CLEAN]:6d} {t[CRASH]:6d} {t[LOSS]:6d} {t[ESCAPE]:6d}   ({report['seconds']} s)")
    for category, items in report["examples"].items():
        lines += [f"  {category}: {item}" for item in items]
    return "\n".join(lines)


def _cap_memory() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = MEMORY_CAP if hard == resource.RLIM_INFINITY else min(MEMORY_CAP, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long", action="store_true", default=bool(os.environ.get("SOUNDSTAGE_FUZZ_LONG")))
    parser.add_argument("--seed", type=int, default=int(os.environ.get("SOUNDSTAGE_FUZZ_SEED", "0")))
    parser.add_argument("--only", action="append", choices=CATEGORIES)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--json", help="write the report here")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    _cap_memory()
    report = run_campaign(args.seed, args.long, args.only, scale=args.scale, verbose=args.verbose)
    print(format_report(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    t = report["total"]
    return 0 if t[CRASH] == t[LOSS] == t[ESCAPE] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
