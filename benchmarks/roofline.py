"""FLOPs of one generation at each issue's target shape, counted on the meta device (no GPU, no memory).

    python benchmarks/roofline.py                      # all four targets
    python benchmarks/roofline.py --peak-tflops 790    # the bf16 dense matmul rate to bound against

Runs the same model code the GPU benchmarks time, at the released sizes, under
``torch.utils.flop_counter.FlopCounterMode`` with meta tensors: every matmul, convolution and
attention FLOP of our implementation is counted from shapes alone. Dividing by a peak rate gives
the time no implementation of this arithmetic can beat; the target divided into it is the fraction
of that peak (model FLOPs utilisation) a run must reach. 790 TFLOP/s is what an H100 SXM sustains on
an 8192^3 bf16 matmul (the spec sheet's 989 is not reached in practice).
"""
from __future__ import annotations

import argparse
import json
import runpy
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ensure_pack = runpy.run_path(str(Path(__file__).with_name("_pack.py")))["ensure_pack"]
ensure_pack()

BENCH = Path(__file__).parent
META = torch.device("meta")
BF16 = torch.bfloat16


def _bench(name: str) -> dict:
    return runpy.run_path(str(BENCH / f"bench_{name}.py"))


def _count(fn) -> float:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn()
    return counter.get_total_flops()


def mmdit() -> dict:
    """Issue 5: 8 s of audio at the 1.55B AudioGen-Omni size, 25 Euler steps, CFG batched (batch 2)."""
    b = _bench("mmdit")
    from soundstage.models.audiogen_omni.presets import PRESETS
    from soundstage.models.audiogen_omni.sampler import sample
    from soundstage.models.common.flow_matching import euler_timesteps

    net = b["build"](PRESETS["audiogen_omni"], META, BF16)
    cond, uncond, n = b["conditions"](net, 8.0, 1, META)
    noise = torch.randn(1, n, net.config.latent_dim, device=META)
    steps = 25
    flops = _count(lambda: sample(net, cond, uncond, noise, num_steps=steps, cfg_scale=4.5, batched_cfg=True,
                                  timesteps=euler_timesteps(steps).to(META)))
    return {"target": "mmdit 8 s, 25 steps, CFG", "unit": "generation", "tflop": flops / 1e12, "target_s": 0.6}


def ovi() -> dict:
    """Issue 6: one forward at the engine's 704x704x121 shape (positive pass; the SLG pass skips 1 of 30 blocks)."""
    b = _bench("ovi")
    from soundstage.models.ovi.fusion import FusionConfig, OviFusion
    from soundstage.models.ovi.tower import audio_config, video_config

    cfg = FusionConfig(video=video_config(), audio=audio_config())
    with torch.device(META):
        model = OviFusion(cfg).to(BF16).eval()
    s = b["SHAPES"]["engine"]
    vid = torch.randn(1, cfg.video.in_dim, s["frames"], s["height"], s["width"], device=META)
    aud = torch.randn(1, s["audio"], cfg.audio.in_dim, device=META)
    text = torch.randn(1, s["text"], cfg.video.text_dim, device=META, dtype=BF16)
    flops = _count(lambda: model(vid, aud, torch.tensor([900], device=META), text, text))
    return {"target": "ovi engine shape", "unit": "forward", "tflop": flops / 1e12, "target_s": 0.45}


def ltx2() -> dict:
    """Issue 7: one forward of the 19B LTX-2 at JUST-DUB-IT's stage-1 in-context shape."""
    b = _bench("ltx2")
    model, native = b["build"]("real", BF16, META)
    args, _, _ = b["inputs"](native, "real", 1, META, BF16)
    flops = _count(lambda: model(*args))
    return {"target": "ltx2 in-context 512x768x121", "unit": "forward", "tflop": flops / 1e12, "target_s": 0.75}


def mtv() -> dict:
    """Issue 8: 50 steps at 49x480x720 with CFG batched (batch 2); audio projected once per chunk."""
    from soundstage.models.mtv.audio_modules import MSTConfig
    from soundstage.models.mtv.transformer import BackboneConfig, MTVTransformer

    with torch.device(META):
        model = MTVTransformer(BackboneConfig(), MSTConfig()).to(BF16).eval()
    c, steps, batch = model.config, 50, 2
    frames = (c.latent_frames - 1) * 4 + 1
    feats = {k: torch.randn(batch, frames, 5, 12, 768, device=META) for k in ("vocal", "effect", "music")}
    shape = (batch, c.latent_frames, c.out_channels, c.latent_height, c.latent_width)
    latents, image = torch.randn(shape, device=META), torch.randn(shape, device=META)
    context = torch.randn(batch, c.text_length, c.text_embed_dim, device=META, dtype=BF16)
    tokens = {}
    audio = _count(lambda: tokens.update(model.project_audio(feats, META)))
    step = _count(lambda: model(latents, context, torch.full((batch,), 900, device=META), tokens, image_latents=image))
    return {"target": "mtv 49x480x720, 50 steps, CFG", "unit": "generation", "tflop": (audio + steps * step) / 1e12,
            "target_s": 60.0}


TARGETS = {"mmdit": mmdit, "ovi": ovi, "ltx2": ltx2, "mtv": mtv}


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("targets", nargs="*", help=f"any of {', '.join(TARGETS)} (default: all)")
    ap.add_argument("--peak-tflops", type=float, default=790.0)
    a = ap.parse_args(argv)
    unknown = sorted(set(a.targets) - set(TARGETS))
    if unknown:
        ap.error(f"unknown targets {unknown}; choose from {', '.join(TARGETS)}")
    rows = []
    for name in a.targets or TARGETS:
        row = TARGETS[name]()
        if row["tflop"] is not None:
            row["bound_s"] = row["tflop"] / a.peak_tflops
            row["mfu_needed"] = row["bound_s"] / row["target_s"]
        rows.append({"name": name, **{k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}})
        print(json.dumps(rows[-1]))
    return rows


if __name__ == "__main__":
    main()
