"""LTX-2 AV transformer forward timing at JUST-DUB-IT's stage-1 in-context shape (LTX-2.0), or at
DubIt's layout on LTX-2.3 (``--version 2.3``: no masks, audio reference at negative time, no CFG).

    python -m soundstage.benchmarks.bench_ltx2 --preset tiny            # CPU smoke run
    python benchmarks/bench_ltx2.py --preset real --dtype bf16 --cfg-batch   # GPU, 18.9B random weights
    python benchmarks/bench_ltx2.py --version 2.3 --preset dubit --dtype bf16 --fp8 --block-swap 16   # 22B
    python benchmarks/bench_ltx2.py --version 2.3 --memory-table         # weight GiB per mode, 22B config

``real`` builds the LTX-2.0 19B config with random weights (no download) at 512x768, 121 frames
(16x16x24 = 6,144 target video tokens + 6,144 context, 126 + 126 audio tokens) and reports
seconds per forward, seconds per CFG step and peak memory. The issue's H100 anchor: 1.117 s per
forward with context (diffusers, bf16), 39.1 GiB peak.
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


PRESETS = {
    # (height, width, pixel frames, fps, text tokens)
    "tiny": dict(height=64, width=96, frames=17, fps=24.0, text_len=8),
    "real": dict(height=512, width=768, frames=121, fps=24.0, text_len=1024),
    # DubIt's default final size (stage 2; stage 1 runs at half of it, i.e. the "real" shape).
    "dubit": dict(height=1024, width=1536, frames=121, fps=24.0, text_len=1024),
}


def native_config(preset: str, version: str = "2.0") -> dict:
    from soundstage.models.just_dub_it.config import LTX2_19B_NATIVE_CONFIG, LTX23_22B_NATIVE_CONFIG
    from soundstage.testing.just_dub_it import TINY_NATIVE_CONFIG
    from soundstage.testing.ltx23 import TINY_LTX23_NATIVE_CONFIG

    real, tiny = {"2.0": (LTX2_19B_NATIVE_CONFIG, TINY_NATIVE_CONFIG),
                  "2.3": (LTX23_22B_NATIVE_CONFIG, TINY_LTX23_NATIVE_CONFIG)}[version]
    return dict(tiny if preset == "tiny" else real)


def build(preset: str, dtype: torch.dtype, device: str, version: str = "2.0"):
    from soundstage.models.just_dub_it.config import diffusers_transformer_kwargs
    from soundstage.models.just_dub_it.transformer import InContextTransformer, build_transformer

    native = native_config(preset, version)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # 18.9B parameters never exist in float32 on the device
    try:
        with torch.device(device):
            model = build_transformer(diffusers_transformer_kwargs(native))
    finally:
        torch.set_default_dtype(previous)
    return InContextTransformer(model.eval().requires_grad_(False)), native


def inputs(native, preset: str, batch: int, device: str, dtype: torch.dtype):
    from soundstage.models.just_dub_it.config import is_ltx23
    from soundstage.models.just_dub_it.in_context import add_noise, audio_state, isolation_masks, video_state
    from soundstage.models.just_dub_it.schedule import audio_latent_frames, latent_frames

    p = PRESETS[preset]
    f, h, w = latent_frames(p["frames"]), p["height"] // 32, p["width"] // 32
    t = audio_latent_frames(p["frames"] / p["fps"])
    ref_v = torch.randn(1, native["in_channels"], f, h, w, device=device)
    ref_a = torch.randn(1, 8, t, native["audio_in_channels"] // 8, device=device)
    if is_ltx23(native):
        return _dubit_inputs(native, p, ref_v, ref_a, batch, device, dtype)
    v = video_state(ref_v, p["fps"], first_frame=ref_v[:, :, :1])
    a = audio_state(ref_a)
    v = add_noise(v, torch.randn_like(v.latent))
    a = add_noise(a, torch.randn_like(a.latent))
    a2v, v2a = isolation_masks(v, a)
    ctx = torch.randn(batch, p["text_len"], native["caption_channels"], device=device, dtype=dtype)
    sigma = 0.9
    args = (
        v.latent.repeat(batch, 1, 1), a.latent.repeat(batch, 1, 1),
        v.timesteps(sigma).repeat(batch, 1, 1), a.timesteps(sigma).repeat(batch, 1, 1),
        v.positions.repeat(batch, 1, 1, 1), a.positions.repeat(batch, 1, 1, 1), ctx, ctx, a2v, v2a,
    )
    return args, v.latent.shape[1], a.latent.shape[1]


def _dubit_inputs(native, p, ref_v, ref_a, batch: int, device: str, dtype: torch.dtype):
    """DubIt (LTX-2.3): reference video at the target's positions, the source audio at negative
    time, no masks; contexts at the stream widths; each stream's sigma = its largest timestep."""
    from soundstage.models.just_dub_it.dubit_layout import dubit_audio_state, dubit_video_state
    from soundstage.models.just_dub_it.in_context import add_noise

    v = dubit_video_state(ref_v, p["fps"])
    v = add_noise(v, torch.randn_like(v.latent))
    a = dubit_audio_state(ref_a, ref_a.shape[2])
    a = add_noise(a, torch.randn_like(a.latent))
    video_width = native["num_attention_heads"] * native["attention_head_dim"]
    audio_width = native["audio_num_attention_heads"] * native["audio_attention_head_dim"]
    sigma = 0.9
    args = (
        v.latent.repeat(batch, 1, 1), a.latent.repeat(batch, 1, 1),
        v.timesteps(sigma).repeat(batch, 1, 1), a.timesteps(sigma).repeat(batch, 1, 1),
        v.positions.repeat(batch, 1, 1, 1), a.positions.repeat(batch, 1, 1, 1),
        torch.randn(batch, p["text_len"], video_width, device=device, dtype=dtype),
        torch.randn(batch, p["text_len"], audio_width, device=device, dtype=dtype),
    )
    return args, v.latent.shape[1], a.latent.shape[1]


def memory_table(residents=(0, 8, 16, 24, 32, 48), version: str = "2.0") -> list[dict]:
    """Device weight GiB of the released transformer (19B LTX-2.0 or 22B LTX-2.3) per memory mode,
    from a meta-device model."""
    from functools import partial

    from soundstage.models.common.block_swap import memory_modes
    from soundstage.models.just_dub_it.memory import estimate_resident_bytes

    return memory_modes(partial(estimate_resident_bytes, native_config("real", version)), residents)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    ap.add_argument("--version", choices=["2.0", "2.3"], default="2.0",
                    help="2.0: the 19B in JUST-DUB-IT's layout; 2.3: the 22B in DubIt's layout")
    ap.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default=None)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--cfg-batch", action="store_true", help="cond + uncond in one batch-2 forward")
    ap.add_argument("--fp8", action="store_true", help="store block weights in float8 (e4m3, one scale per tensor)")
    ap.add_argument("--fp8-matmul", action="store_true",
                    help="with --fp8: block matmuls in fp8 (torch._scaled_mm) on GPUs that have it")
    ap.add_argument("--block-swap", type=int, default=-1, metavar="RESIDENT",
                    help="keep RESIDENT blocks on the device and stream the rest from CPU (-1: off)")
    ap.add_argument("--no-prefetch", action="store_true",
                    help="with --block-swap: copy each streamed block when it runs instead of during its predecessor")
    ap.add_argument("--memory-table", action="store_true",
                    help="print device weight GiB per memory mode at the released config (meta device) and exit")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    args = ap.parse_args(argv)
    _import_pack()
    if args.memory_table:
        rows = memory_table(version=args.version)
        for r in rows:
            print(f"{r['mode']:<22} resident {str(r['resident']):>4}: {r['gib']:6.2f} GiB")
        return {"memory_table": rows}
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[
        args.dtype or ("bf16" if args.device.startswith("cuda") else "fp32")
    ]
    swap = args.block_swap >= 0
    model, native = build(args.preset, dtype, "cpu" if swap else args.device, args.version)
    if args.fp8:
        from soundstage.models.just_dub_it.memory import store_fp8

        store_fp8(model.transformer, fp8_matmul=args.fp8_matmul)
    if swap:
        from soundstage.models.just_dub_it.memory import ltx2_block_swap

        ltx2_block_swap(model, args.device, resident=args.block_swap, prefetch=not args.no_prefetch)
    batch = 2 if args.cfg_batch else 1
    fwd_args, nv, na = inputs(native, args.preset, batch, args.device, dtype)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    with torch.inference_mode():
        for _ in range(args.warmup):
            model(*fwd_args)
        sync()
        t0 = time.perf_counter()
        for _ in range(args.iters):
            model(*fwd_args)
        sync()
    per_forward = (time.perf_counter() - t0) / args.iters
    result = {
        "preset": args.preset, "version": args.version, "device": args.device, "dtype": str(dtype), "cfg_batch": args.cfg_batch,
        "fp8": args.fp8, "fp8_matmul": args.fp8 and args.fp8_matmul,
        "block_swap_resident": args.block_swap if swap else None, "prefetch": swap and not args.no_prefetch,
        "video_tokens": nv, "audio_tokens": na,
        "seconds_per_forward_call": round(per_forward, 4),
        "seconds_per_cfg_step": round(per_forward if args.cfg_batch else 2 * per_forward, 4),
        "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if args.device.startswith("cuda") else None,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
