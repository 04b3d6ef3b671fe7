"""DualDub sampler speed with and without the KV cache (aligner cache + trunk KV cache), random weights.

    python -m benchmarks.bench_dualdub --size tiny --seconds 10
    python -m benchmarks.bench_dualdub --size base --device cuda --dtype bf16 --seconds 10

A step produces one background-audio token and one speech token; ``tokens/s`` counts both.
``tiny`` is the test-size trunk; ``base`` a Qwen2-0.5B-shaped trunk with CLIP-L video width and the
4096-code WavTokenizer vocabulary (the paper does not state its LM size).
"""
from __future__ import annotations

import argparse
import runpy
import json
import time
from pathlib import Path

import torch

# Benchmarks run as scripts, as modules and through runpy: load the helper by path in every case.
ensure_pack = runpy.run_path(str(Path(__file__).with_name("_pack.py")))["ensure_pack"]


def _import_pack():
    ensure_pack()
    from soundstage.models.dualdub import config, model, sampler

    return config, model, sampler


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["tiny", "base"], default="tiny")
    parser.add_argument("--seconds", type=float, default=10.0, help="audio length to generate")
    parser.add_argument("--token-rate", type=float, default=75.0, help="codec tokens/s (WavTokenizer: 40 or 75)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32")
    parser.add_argument("--no-uncached", action="store_true", help="skip the (quadratic) run without cache")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    args = parser.parse_args(argv)

    config, model_mod, sampler = _import_pack()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    if args.size == "tiny":
        from soundstage.testing.dualdub import tiny_config

        cfg = tiny_config(token_rate=args.token_rate)
    else:
        cfg = config.DualDubConfig(token_rate=args.token_rate)
    torch.manual_seed(0)
    model = model_mod.DualDub(cfg).eval().requires_grad_(False).to(device=device, dtype=dtype)
    video_frames = max(1, round(args.seconds * 25 / 3))  # 25 fps video, one frame in three
    cond = model.conditions(
        text_ids=torch.randint(0, cfg.text_vocab_size, (1, 20), device=device),
        speaker=torch.randn(1, cfg.speaker_dim, device=device),
        video=torch.randn(1, video_frames, cfg.video_dim, device=device),
        video_times=torch.arange(video_frames, device=device) * 3 / 25.0,
    )
    steps = sampler.steps_for_duration(args.seconds, cfg.token_rate)
    opts = sampler.SamplingOptions(top_k=50, seed=0, min_steps=steps)

    def timed(use_cache: bool) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = sampler.generate(model, cond, steps, options=opts, use_cache=use_cache)
        if device.type == "cuda":
            torch.cuda.synchronize()
        assert out.steps == steps
        return time.perf_counter() - start

    sampler.generate(model, cond, min(steps, 8), options=opts)  # warm-up
    result = {"size": args.size, "device": str(device), "dtype": args.dtype, "seconds": args.seconds,
              "steps": steps, "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2)}
    t = timed(True)
    result["cached_s"] = round(t, 3)
    result["cached_tokens_per_s"] = round(2 * steps / t, 1)
    if not args.no_uncached:
        t = timed(False)
        result["uncached_s"] = round(t, 3)
        result["uncached_tokens_per_s"] = round(2 * steps / t, 1)
        result["speedup"] = round(result["cached_tokens_per_s"] / result["uncached_tokens_per_s"], 2)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
