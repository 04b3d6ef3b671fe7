"""Vocoder speed at the released sizes, with random weights: seconds of audio per second of compute.

    python -m benchmarks.bench_vocoder --model v1_16k --seconds 2 --repeat 3
    python -m benchmarks.bench_vocoder --model v2_44k --device cuda --dtype bf16

Run from the directory that contains the pack (it is imported as ``soundstage``) or from the
repository root (the script registers it under that name).
"""
from __future__ import annotations

import argparse
import runpy
import time
from pathlib import Path

import torch

# Benchmarks run as scripts, as modules and through runpy: load the helper by path in every case.
ensure_pack = runpy.run_path(str(Path(__file__).with_name("_pack.py")))["ensure_pack"]


def _import_pack():
    ensure_pack()
    from soundstage.models.common.codecs import bigvgan

    return bigvgan


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["v1_16k", "v2_44k"], default="v1_16k")
    parser.add_argument("--seconds", type=float, default=2.0, help="audio length per call")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    args = parser.parse_args(argv)

    bigvgan = _import_pack()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = bigvgan.BIGVGAN_V1_16K if args.model == "v1_16k" else bigvgan.BIGVGAN_V2_44K
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    device = torch.device(args.device)
    model = bigvgan.BigVGAN(config).eval().requires_grad_(False).to(device=device, dtype=dtype)
    frames = max(1, round(args.seconds * config.sample_rate / config.hop_length))
    mel = torch.randn(1, config.num_mels, frames, device=device, dtype=dtype) - 4.0
    audio_seconds = frames * config.hop_length / config.sample_rate

    def run() -> tuple[float, float]:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start, cpu_start = time.perf_counter(), time.process_time()
        with torch.inference_mode():
            model(mel)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start, time.process_time() - cpu_start

    run()  # warm-up: allocator, kernels
    runs = sorted(run() for _ in range(args.repeat))
    times = [wall for wall, _ in runs]
    best = times[0]
    result = {
        "model": args.model,
        "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
        "device": str(device),
        "dtype": args.dtype,
        "threads": torch.get_num_threads(),
        "audio_s": round(audio_seconds, 3),
        "best_s": round(best, 3),
        "median_s": round(times[len(times) // 2], 3),
        "x_realtime": round(audio_seconds / best, 2),
        # CPU time of the process: on a shared machine, wall time alone overstates the cost.
        "cpu_s_best_run": round(runs[0][1], 3),
    }
    print(result)
    return result


if __name__ == "__main__":
    main()
