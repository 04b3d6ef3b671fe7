"""Batch throughput: one `soundstage batch` over N clips vs N separate `soundstage run` calls (the model-reuse gain).

    python benchmarks/bench_batch.py                 # 8 clips of 2 s, local batch
    python benchmarks/bench_batch.py --clips 24 --ray --workers 2

Both sides run the same workflow (audio_reconstruct_mmaudio.json: Load Audio -> mel-VAE -> BigVGAN -> Save
Audio, tiny random codecs) in fresh processes, in one run, so the ratio compares like with like: `run` pays
the interpreter, the pack's imports and the model loads once per clip, `batch` once per worker. Prints one
JSON line; `ratio` = one-by-one seconds / batch seconds (> 1: the batch is faster).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import runpy
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ensure_pack = runpy.run_path(str(Path(__file__).with_name("_pack.py")))["ensure_pack"]
ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "workflows" / "audio_reconstruct_mmaudio.json"


def _speechlike(seconds: float, rate: int, seed: int) -> np.ndarray:
    """Harmonic syllables with pauses, a little noise: enough signal for the codecs to chew on."""
    t = np.arange(int(seconds * rate)) / rate
    voice = sum(np.sin(2 * np.pi * (140 + 10 * seed) * k * t) / k for k in range(1, 6))
    noise = np.random.default_rng(seed).normal(0, 0.01, t.shape)
    return (0.3 * ((t % 0.5) < 0.3) * voice + noise).astype(np.float32)


def _write_inputs(folder: Path, clips: int, seconds: float) -> None:
    import av

    folder.mkdir(parents=True)
    rate = 16000
    for i in range(clips):
        with av.open(str(folder / f"clip_{i:03d}.wav"), "w") as container:
            stream = container.add_stream("pcm_s16le", rate=rate, layout="mono")
            samples = (np.clip(_speechlike(seconds, rate, i), -1, 1) * 32767).astype(np.int16)[None]
            frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)


def _python_m_soundstage(pkg: Path, args: list[str]) -> tuple[list[str], dict]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(pkg), os.environ.get("PYTHONPATH")) if p),
               RAY_AUTH_MODE="disabled")
    return [sys.executable, "-m", "soundstage", *args], env


def _timed_call(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} ... failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def run(clips: int, seconds: float, ray: bool, workers: int) -> dict:
    ensure_pack()
    from soundstage.testing.codecs import write_codec_files

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pkg = tmp / "pkg"
        pkg.mkdir()
        (pkg / "soundstage").symlink_to(ROOT)  # every process imports this checkout as `soundstage`
        models = tmp / "models"
        (models / "soundstage" / "mmaudio").mkdir(parents=True)
        write_codec_files(models / "soundstage" / "mmaudio")
        inputs = tmp / "in"
        _write_inputs(inputs, clips, seconds)
        names = sorted(p.name for p in inputs.iterdir())

        one_by_one = 0.0
        for name in names:
            command, env = _python_m_soundstage(pkg, [
                "run", str(WORKFLOW), "--input-dir", str(inputs), "--output-dir", str(tmp / "run_out"),
                "--models-dir", str(models), "--set", f"1.audio={name}"])
            one_by_one += _timed_call(command, env)

        extra = ["--ray", "--workers", str(workers)] if ray else []
        command, env = _python_m_soundstage(pkg, ["batch", str(WORKFLOW), "--inputs", str(inputs), "--out",
                                                  str(tmp / "batch_out"), "--models-dir", str(models), *extra])
        batch = _timed_call(command, env)
        records = [json.loads(line) for line in (tmp / "batch_out" / "manifest.jsonl").read_text().splitlines()]
        assert len(records) == clips and all(r["status"] == "ok" for r in records), records
        loads = sum(not {"2", "3"} & set(r["reused"]) for r in records)  # items that loaded the codecs

    return {"clips": clips, "seconds_per_clip": seconds, "mode": f"ray x{workers}" if ray else "local",
            "one_by_one_s": round(one_by_one, 2), "batch_s": round(batch, 2),
            "ratio": round(one_by_one / batch, 2) if batch > 0 else math.inf, "model_loads_in_batch": loads,
            "cpu_count": os.cpu_count()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--ray", action="store_true", help="run the batch on a local Ray cluster")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.clips, args.seconds, args.ray, args.workers)))


if __name__ == "__main__":
    main()
