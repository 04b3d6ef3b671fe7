"""Ovi fusion forward/step benchmark.

    python benchmarks/bench_ovi.py                      # CPU, tiny random model (smoke test)
    python benchmarks/bench_ovi.py --shape engine       # GPU: 704x704, 121 frames (15,004 + 157 tokens),
                                                        # 512 text tokens, full-size random weights, bf16
    python benchmarks/bench_ovi.py --shape engine --fp8 --block-swap 10   # the 24 GB-card mode
    python benchmarks/bench_ovi.py --memory-table       # weight bytes per mode at the real config (meta, no GPU)

Reports seconds per forward (positive + SLG-negative batched as one forward of batch 2, and the
two passes run separately), seconds per sampling step and peak memory. Weights are random: speed
and memory do not depend on their values.
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

ensure_pack()

from soundstage.models.ovi.fusion import FusionConfig, OviFusion  # noqa: E402
from soundstage.models.ovi.memory import estimate_resident_bytes, fp8_blocks_, ovi_block_swap  # noqa: E402
from soundstage.models.ovi.sampler import OviConditioning, OviSampling, guided_velocity  # noqa: E402
from soundstage.testing.ovi import randomize_, tiny_fusion_config  # noqa: E402
from soundstage.models.ovi.tower import audio_config, video_config  # noqa: E402

# 704x704 at 16x VAE -> 44x44 latent, 31 latent frames; tokens 31 * 22 * 22 = 15,004 (+157 audio).
SHAPES = {
    "tiny": dict(frames=2, height=4, width=4, audio=10, text=12),
    "engine": dict(frames=31, height=44, width=44, audio=157, text=512),
}


def build(shape: str, device, dtype, fp8: bool, swap: int | None, fp8_matmul: str = "none", prefetch: bool = True):
    if shape == "tiny":
        cfg = tiny_fusion_config(dim=32, heads=2, layers=2, ffn=64, text_len=16, text_dim=32)
    else:
        cfg = FusionConfig(video=video_config(), audio=audio_config())  # the released 720x720 5 s sizes
    with torch.device("meta"):
        model = OviFusion(cfg).to(dtype)  # dtype first: the full-size model is never materialised in fp32
    model = model.to_empty(device="cpu" if swap is not None else device)
    if shape == "tiny":
        randomize_(model, 0)
    else:
        for p in model.parameters():
            torch.nn.init.normal_(p, std=0.02)
    model = model.eval().requires_grad_(False)
    if fp8:
        fp8_blocks_(model, compute_dtype=torch.bfloat16, fp8_matmul=fp8_matmul)
    if swap is not None:
        ovi_block_swap(model, device, resident=swap, prefetch=prefetch)  # places the non-block weights too
    else:
        model.to(device)
    return model, cfg


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeat: int) -> float:
    fn()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / repeat


def memory_table(residents=(0, 5, 10, 15, 20, 30)) -> list[dict]:
    """Device weight GiB of the released config per memory mode, from a meta-device model."""
    from functools import partial

    from soundstage.models.common.block_swap import memory_modes

    cfg = FusionConfig(video=video_config(), audio=audio_config())
    return memory_modes(partial(estimate_resident_bytes, cfg), residents)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", choices=["bf16", "fp32"], default=None)
    ap.add_argument("--fp8", action="store_true", help="fp8 e4m3 block weights, bf16 compute")
    ap.add_argument("--fp8-matmul", choices=["none", "ffn", "all"], default="none",
                    help="with --fp8: also run these block matmuls in fp8 (torch._scaled_mm)")
    ap.add_argument("--block-swap", type=int, default=None, metavar="RESIDENT",
                    help="stream fusion blocks from CPU, keeping RESIDENT blocks on the device")
    ap.add_argument("--no-prefetch", action="store_true",
                    help="with --block-swap: copy each streamed block when it runs instead of during its predecessor")
    ap.add_argument("--memory-table", action="store_true",
                    help="print device weight GiB per memory mode at the real config (meta device) and exit")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)
    if args.memory_table:
        rows = memory_table()
        for r in rows:
            print(f"{r['mode']:<22} resident {str(r['resident']):>4}: {r['gib']:6.2f} GiB")
        return {"memory_table": rows}
    device = torch.device(args.device)
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype or ("bf16" if device.type == "cuda" else "fp32")]
    s = SHAPES[args.shape]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    model, cfg = build(args.shape, device, dtype, args.fp8, args.block_swap, args.fp8_matmul, not args.no_prefetch)
    g = torch.Generator().manual_seed(0)
    vid = torch.randn(cfg.video.in_dim, s["frames"], s["height"], s["width"], generator=g).to(device)
    aud = torch.randn(s["audio"], cfg.audio.in_dim, generator=g).to(device)
    txt = lambda n: torch.randn(n, cfg.video.text_dim, generator=g).to(dtype)  # noqa: E731
    cond = OviConditioning(txt(s["text"]), txt(s["text"] // 4), txt(s["text"] // 4))
    t = torch.tensor([900], device=device)
    slg = min(11, cfg.video.num_layers - 1)
    results = {"shape": args.shape, "device": str(device), "dtype": str(dtype), "fp8": args.fp8, "fp8_matmul": args.fp8_matmul if args.fp8 else "none",
               "block_swap": args.block_swap, "prefetch": args.block_swap is not None and not args.no_prefetch,
               "video_tokens": s["frames"] * (s["height"] // 2) * (s["width"] // 2), "audio_tokens": s["audio"]}
    with torch.no_grad():
        for batch in (True, False):
            sampling = OviSampling(slg_layer=slg, batch_cfg=batch)
            step = timed(lambda: guided_velocity(model, vid, aud, t, cond, sampling, False), device, args.repeat)
            key = "batched" if batch else "separate"
            results[f"s_per_step_{key}"] = step
            results[f"s_per_forward_{key}"] = step / 2  # two passes (positive, SLG negative) per step
    if device.type == "cuda":
        results["peak_gib"] = torch.cuda.max_memory_allocated() / 2 ** 30
    results["est_s_50_steps"] = 50 * min(results["s_per_step_batched"], results["s_per_step_separate"])
    print(json.dumps(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
