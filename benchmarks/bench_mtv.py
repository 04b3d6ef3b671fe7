"""MTV denoiser speed and memory: seconds per sampling step (batched CFG) and peak VRAM.

    python benchmarks/bench_mtv.py                      # tiny model on CPU (smoke run)
    python benchmarks/bench_mtv.py --size full --device cuda --steps 50   # 49 x 480 x 720, bf16
    python benchmarks/bench_mtv.py --size full --device cuda --fp8 --fp8-matmul   # fp8 block GEMMs

The full size uses random weights at the real CogVideoX-5B-I2V + MST-ControlNet shapes (no
checkpoint needed): the cost of a step does not depend on the weight values. Audio features are
projected once per chunk, as the sampler does; text is 226 x 4096 zeros-shaped features.
"""
from __future__ import annotations

import argparse
import runpy
import json
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


# Benchmarks run as scripts, as modules and through runpy: load the helper by path in every case.
ensure_pack = runpy.run_path(str(Path(__file__).with_name("_pack.py")))["ensure_pack"]


def _import_pack():
    ensure_pack()


def build(size: str, device: str, dtype: torch.dtype):
    from soundstage.models.mtv.audio_modules import MSTConfig
    from soundstage.testing.mtv import tiny_mtv
    from soundstage.models.mtv.transformer import BackboneConfig, MTVTransformer

    if size == "tiny":
        return tiny_mtv().to(device, dtype), 2, 16
    with torch.device("meta"):
        model = MTVTransformer(BackboneConfig(), MSTConfig())
    model = model.to_empty(device=device).to(dtype)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1:
                p.normal_(0, 0.02)
            else:
                p.fill_(1.0 if name.endswith("weight") else 0.0)
    return model.eval().requires_grad_(False), 12, 768


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=["tiny", "full"], default="tiny")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", choices=["bfloat16", "float32"], default=None)
    ap.add_argument("--steps", type=int, default=None, help="sampling steps (default 50 on GPU, 3 on CPU)")
    ap.add_argument("--cfg", type=float, default=3.5)
    ap.add_argument("--resident-projectors", action="store_true",
                    help="keep the 3 audio projectors (3.7B parameters) on the GPU instead of streaming them")
    ap.add_argument("--fp8", action="store_true", help="backbone block linears stored in fp8 e4m3 (bf16 compute)")
    ap.add_argument("--fp8-matmul", action="store_true", help="with --fp8: fp8 GEMMs too (Ada/Hopper)")
    args = ap.parse_args()
    _import_pack()
    from soundstage.models.mtv.memory import store_fp8
    from soundstage.models.mtv.sampler import AudioControl, sample_mtv

    dtype = getattr(torch, args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32"))
    steps = args.steps or (50 if args.device.startswith("cuda") else 3)
    t0 = time.perf_counter()
    model, w2v_layers, w2v_width = build(args.size, args.device, dtype)
    if args.fp8:
        store_fp8(model, fp8_matmul=args.fp8_matmul)
    build_s = time.perf_counter() - t0
    c = model.config
    g = torch.Generator().manual_seed(0)
    streams = {k: torch.randn(49, 5, w2v_layers, w2v_width, generator=g) for k in ("vocal", "effect", "music")}
    control = AudioControl(**streams, num_frames=49)
    context = torch.randn(1, c.text_length, c.text_embed_dim, generator=g)
    times: list[float] = []
    last = [time.perf_counter()]

    def callback(i: int, n: int) -> None:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now

    if args.device.startswith("cuda"):
        if not args.resident_projectors:
            model.place(args.device, projector_device="cpu")  # what the sampler node does
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    last[0] = time.perf_counter()
    sample_mtv(model, context, control, latent_height=c.latent_height, latent_width=c.latent_width,
               steps=steps, guidance=args.cfg, seed=0, callback=callback)
    steady = times[1:] or times
    report = {
        "size": args.size, "device": args.device, "dtype": str(dtype).replace("torch.", ""), "steps": steps,
        "frames": (c.latent_frames - 1) * 4 + 1, "height": c.latent_height * 8, "width": c.latent_width * 8,
        "cfg_batched": args.cfg != 1.0, "fp8": args.fp8, "fp8_matmul": args.fp8 and args.fp8_matmul, "params_b": round(sum(p.numel() for p in model.parameters()) / 1e9, 3), "build_s": round(build_s, 2), "first_step_s": round(times[0], 3),
        "s_per_step": round(sum(steady) / len(steady), 4), "total_s": round(sum(times), 2),
    }
    if args.device.startswith("cuda"):
        report["peak_vram_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
