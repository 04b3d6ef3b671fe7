"""Sampling speed of the MMDiT family with random weights.

    python benchmarks/bench_mmdit.py --preset tiny                      # CPU smoke run
    python benchmarks/bench_mmdit.py --preset audiogen_omni --device cuda --dtype bf16 --cuda-graph
    python benchmarks/bench_mmdit.py --preset large_44k_v2 --device cuda --dtype bf16 --cuda-graph

Measures one full generation (25 Euler steps, CFG 4.5, cond+uncond batched into one forward) of
``--seconds`` of audio, excluding condition encoding (cached per clip) and the VAE/vocoder.
``--cuda-graph`` captures the whole 25-step loop as one CUDA graph (no host work per step);
``--step-graph`` replays one step's forward per step, as the MMDiT Sampler node's ``cuda_graph`` does;
``--compile`` runs the velocity through torch.compile first.
"""
from __future__ import annotations

import argparse
import runpy
import json
import statistics
import sys
import time
from pathlib import Path


# Benchmarks run as scripts, as modules and through runpy: load the helper by path in every case.
ensure_pack = runpy.run_path(str(Path(__file__).with_name("_pack.py")))["ensure_pack"]

ensure_pack()

import torch  # noqa: E402

from soundstage.models.audiogen_omni.mmdit import MMDiT, MMDiTConfig  # noqa: E402
from soundstage.models.audiogen_omni.presets import PRESETS  # noqa: E402
from soundstage.models.audiogen_omni.sampler import sample  # noqa: E402
from soundstage.models.common.flow_matching import euler_timesteps  # noqa: E402

TINY = MMDiTConfig(latent_dim=20, clip_dim=32, sync_dim=32, text_dim=32, hidden_dim=64, depth=4, fused_depth=2,
                   num_heads=2, text_seq_len=16, latent_seq_len=250, clip_seq_len=64, sync_seq_len=192)


def build(cfg: MMDiTConfig, device, dtype) -> MMDiT:
    with torch.device(device):
        net = MMDiT(cfg)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.02)
        net.latent_std.fill_(1.0)
    return net.to(dtype).eval().requires_grad_(False)


def conditions(net: MMDiT, seconds: float, batch: int, device):
    cfg = net.config
    n = net.latent_len_for(seconds)
    clip_len = int(seconds * 8)  # 8 fps
    sync_len = int(((seconds * 25 - 16) // 8 + 1) * 8)  # 16-frame segments, stride 8, 8 tokens each
    g = torch.Generator(device="cpu").manual_seed(0)
    rnd = lambda *s: torch.randn(*s, generator=g).to(device)  # noqa: E731
    cond = net.encode_conditions(batch=batch, latent_len=n, clip_f=rnd(batch, clip_len, cfg.clip_dim),
                                 sync_f=rnd(batch, sync_len, cfg.sync_dim), text_f=rnd(batch, cfg.text_seq_len, cfg.text_dim))
    uncond = net.empty_conditions(batch, n, clip_len=clip_len, sync_len=sync_len)
    return cond, uncond, n


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny", choices=["tiny", *PRESETS])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--cfg", type=float, default=4.5)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--compile-backend", default="inductor", help="torch.compile backend (eager/aot_eager to debug)")
    ap.add_argument("--compile-mode", default=None, help="e.g. max-autotune-no-cudagraphs")
    ap.add_argument("--cuda-graph", action="store_true", help="the whole 25-step loop as one CUDA graph")
    ap.add_argument("--step-graph", action="store_true",
                    help="the MMDiT Sampler node's cuda_graph: one step's forward replayed per step")
    ap.add_argument("--threads", type=int, default=0, help="CPU intra-op threads (0: torch's default)")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[a.dtype]
    cfg = TINY if a.preset == "tiny" else PRESETS[a.preset]
    if torch.device(a.device).type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    net = build(cfg, a.device, dtype)
    params = sum(p.numel() for p in net.parameters())
    with torch.no_grad():
        cond, uncond, n = conditions(net, a.seconds, a.batch, a.device)
    noise = torch.randn(a.batch, n, cfg.latent_dim, generator=torch.Generator().manual_seed(1)).to(a.device)
    ts = euler_timesteps(a.steps).to(a.device)  # on the device: the loop never touches the host

    if a.compile:
        net.predict_flow = torch.compile(net.predict_flow, dynamic=False, backend=a.compile_backend, mode=a.compile_mode)

    def run(x0):
        with torch.no_grad():
            return sample(net, cond, uncond, x0, num_steps=a.steps, cfg_scale=a.cfg, batched_cfg=True, timesteps=ts,
                          cuda_graph=a.step_graph)

    step = run
    if a.cuda_graph:
        if torch.device(a.device).type != "cuda":
            raise SystemExit("--cuda-graph needs --device cuda")
        static_in = noise.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                run(static_in)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = run(static_in)

        def step(x0):
            static_in.copy_(x0)
            graph.replay()
            return static_out

    for _ in range(a.warmup):
        step(noise)
    sync(a.device)
    times = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        out = step(noise)
        sync(a.device)
        times.append(time.perf_counter() - t0)
    ok = bool(torch.isfinite(out).all())
    report = {
        "preset": a.preset, "params": params, "device": torch.cuda.get_device_name() if "cuda" in a.device else "cpu",
        "dtype": a.dtype, "seconds_audio": a.seconds, "latent_frames": n, "steps": a.steps, "cfg": a.cfg,
        "batch": a.batch, "compile": a.compile, "cuda_graph": a.cuda_graph, "step_graph": a.step_graph,
        "median_s": statistics.median(times), "min_s": min(times), "finite": ok,
    }
    print(json.dumps(report))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
