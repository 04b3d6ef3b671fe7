"""CPU seconds per step of each stage of the MTV tiny default at a scale (issue 19): what the ``full`` plan is
sized from. Process time, so a contended machine (the training of other defaults) does not inflate it much.

    nice -n 19 python benchmarks/tiny_defaults_mtv.py --scale feasibility --steps 3
"""
from __future__ import annotations

import argparse
import json
import runpy
import time
from pathlib import Path

import torch

ensure_pack = runpy.run_path(str(Path(__file__).with_name("_pack.py")))["ensure_pack"]


def cpu_per_step(step, steps: int) -> float:
    step()  # warm-up (allocations, first-call dispatch)
    start = time.process_time()
    for _ in range(steps):
        step()
    return round((time.process_time() - start) / steps, 3)


def measure(scale: str, steps: int) -> dict:
    ensure_pack()

    from soundstage.training.defaults import mtv, mtv_parts, ovi_parts
    from soundstage.training.mtv.train import LossConfig, batches, make_loss_fn

    sc = mtv.SCALES[scale]
    t0 = time.process_time()
    clips = mtv.mtv_clips("train", 2, sc)
    clip_s = (time.process_time() - t0) / 2
    frames = [c.frames for c in clips]
    vae = mtv_parts.new_cogvideox_vae(mtv_parts.tiny_vae_config(sc.latent_channels, sc.vae_widths), 0)
    opt = torch.optim.AdamW(vae.parameters(), lr=1e-4)

    def train_step(model, loss_fn, data, optimizer):
        def step():
            loss, _ = loss_fn(model, next(data))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        return step

    out = {"scale": scale, "threads": torch.get_num_threads(), "world_clip_cpu_s": round(clip_s, 2)}
    out["vae_frames"] = cpu_per_step(train_step(vae, ovi_parts.vae_loss,
                                                ovi_parts.frame_batches(frames, sc.vae_frame_batch, 0, frames=1), opt), steps)
    out["vae_crops"] = cpu_per_step(train_step(vae, ovi_parts.vae_loss,
                                               ovi_parts.frame_batches(frames, sc.vae_batch, 0, frames=9), opt), steps)
    wav2vec = mtv_parts.new_wav2vec(sc.wav2vec_hidden, sc.wav2vec_layers, sc.wav2vec_conv, 0)
    t0 = time.process_time()
    feats = [mtv.stream_features(wav2vec, c) for c in clips]
    out["features_cpu_s_per_clip"] = round((time.process_time() - t0) / len(clips), 3)
    lat = sc.size // 8
    g = torch.Generator().manual_seed(0)
    items = [{"latents": torch.randn(mtv.LATENT_FRAMES, sc.latent_channels, lat, lat, generator=g),
              "image": torch.randn(1, sc.latent_channels, lat, lat, generator=g),
              "context": torch.randn(sc.text_len, sc.text_dim, generator=g)} | f for f in feats]
    net = mtv.new_model(sc, feats[0]["vocal"], 0)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    data = batches([items[i % len(items)] for i in range(sc.batch)], sc.batch, 0)
    out["denoiser"] = cpu_per_step(train_step(net, make_loss_fn(LossConfig(), seed=0), data, opt), steps)
    out["denoiser_params"] = sum(p.numel() for p in net.parameters())
    out["vae_params"] = sum(p.numel() for p in vae.parameters())
    plan = {"vae_frames": sc.vae_frame_steps, "vae_crops": sc.vae_steps, "denoiser": sc.dit_steps}
    out["plan_cpu_min"] = round((sum(out[k] * n for k, n in plan.items()) + sc.train_clips * (
        clip_s + out["features_cpu_s_per_clip"])) / 60, 1)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", default="feasibility")
    p.add_argument("--steps", type=int, default=3)
    args = p.parse_args(argv)
    print(json.dumps(measure(args.scale, args.steps), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
