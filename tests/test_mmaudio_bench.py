"""The MMDiT benchmark script runs end to end (tiny config, CPU) and reports a finite sample."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch


def test_bench_tiny_cpu(capsys):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_mmdit.py"
    spec = importlib.util.spec_from_file_location("bench_mmdit", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    before = torch.get_num_threads()
    try:
        rc = mod.main(["--preset", "tiny", "--seconds", "2", "--steps", "2", "--repeats", "1", "--warmup", "0",
                       "--threads", "1"])
    finally:
        torch.set_num_threads(before)
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and report["finite"] and report["latent_frames"] == 63 and report["median_s"] > 0
