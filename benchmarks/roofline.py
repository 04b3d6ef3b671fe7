"""FLOPs and activation memory of each issue's target shape, measured without a GPU.

    python benchmarks/roofline.py                      # all five targets (about 5 minutes)
    python benchmarks/roofline.py ltx23                # LTX-2.3 22B in DubIt's layout
    python benchmarks/roofline.py ovi --peak-tflops 790

The same model code the GPU benchmarks time runs at the released sizes on fake tensors (shapes
and dtypes only, nothing allocated). ``FlopCounterMode`` counts every matmul, convolution and
attention FLOP; torch's ``MemTracker`` follows every activation's lifetime to give a forward's
activation peak (attention as the fused kernels run it: no L x L matrix). FLOPs over a peak rate
is the time no implementation of this arithmetic can beat (790 TFLOP/s: what an H100 SXM sustains
on an 8192^3 bf16 matmul), and the target divided into it is the share of that peak a run must
sustain. Weights per memory mode plus the activation peak estimate each mode's peak VRAM, before
the CUDA context, cuBLAS workspaces and allocator slack (typically another 1-2 GiB). Cross-check:
Ovi in bf16 comes out at 25.1 GiB for a batch-2 forward; the reference code peaks at 24.2 GiB.
"""
from __future__ import annotations

import argparse
import json
import runpy
from contextlib import contextmanager
from pathlib import Path

import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.distributed._tools.mem_tracker import MemTracker
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

ensure_pack = runpy.run_path(str(Path(__file__).with_name("_pack.py")))["ensure_pack"]
ensure_pack()

BENCH = Path(__file__).parent
BF16 = torch.bfloat16
GIB = 2 ** 30


def _bench(name: str) -> dict:
    return runpy.run_path(str(BENCH / f"bench_{name}.py"))


@contextmanager
def _building_in(dtype: torch.dtype):
    """Modules built inside get ``dtype`` parameters (``.to()`` cannot convert fake parameters)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _measure(fn, model: torch.nn.Module) -> tuple[float, float]:
    """(FLOPs, activation peak bytes) of ``fn()`` under no_grad; each module may run once per pass."""
    # Counted with the math attention, whose matmuls have FLOP formulas (the fused CPU kernel has
    # none); the memory pass keeps the fused kernel, which, as on a GPU, never holds an L x L matrix.
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter, torch.no_grad():
        fn()
    for p in model.parameters():
        p.requires_grad_(True)  # MemTracker hooks every parameter; fake tensors, so no cost
    tracker = MemTracker()
    with torch.no_grad(), tracker:
        fn()
    peak = next(iter(tracker.get_tracker_snapshot("peak").values()))
    act = peak["Total"] - sum(v for k, v in peak.items() if getattr(k, "name", "") in ("PARAM", "BUFFER"))
    return counter.get_total_flops(), act


def _gib(module: torch.nn.Module) -> float:
    from soundstage.models.common.fp8 import tensor_bytes

    return tensor_bytes(module) / GIB


def _modes(table: list[dict], picks: dict[str, tuple[str, object]]) -> dict[str, float]:
    """Weight GiB of the named memory modes from a benchmark's ``memory_table`` rows."""
    rows = {(r["mode"], r["resident"]): r["gib"] for r in table}
    return {name: rows[key] for name, key in picks.items()}


def mmdit() -> dict:
    """Issue 5: 8 s of audio at the 1.55B AudioGen-Omni size, 25 Euler steps, CFG batched (batch 2)."""
    from soundstage.models.audiogen_omni.mmdit import MMDiT
    from soundstage.models.audiogen_omni.presets import PRESETS
    from soundstage.models.audiogen_omni.sampler import sample

    with _building_in(BF16):
        net = MMDiT(PRESETS["audiogen_omni"]).eval()
    cond, uncond, n = _bench("mmdit")["conditions"](net, 8.0, 1, "cpu")
    noise = torch.randn(1, n, net.config.latent_dim)
    steps, weights = 25, _gib(net)
    flops, act = _measure(lambda: sample(net, cond, uncond, noise, num_steps=1, cfg_scale=4.5, batched_cfg=True), net)
    return {"target": "mmdit 8 s, 25 steps, CFG", "unit": "generation", "tflop": steps * flops / 1e12,
            "target_s": 0.6, "activations_gib": act / GIB, "weights_gib": lambda: {"bf16": weights}}


def ovi() -> dict:
    """Issue 6: one batch-2 forward (positive + SLG negative) at the engine's 704x704x121 shape."""
    b = _bench("ovi")
    from soundstage.models.ovi.fusion import FusionConfig, OviFusion
    from soundstage.models.ovi.tower import audio_config, video_config

    cfg = FusionConfig(video=video_config(), audio=audio_config())
    with _building_in(BF16):
        model = OviFusion(cfg).eval()
    s = b["SHAPES"]["engine"]
    vid = torch.randn(2, cfg.video.in_dim, s["frames"], s["height"], s["width"])
    aud = torch.randn(2, s["audio"], cfg.audio.in_dim)
    text = torch.randn(2, s["text"], cfg.video.text_dim, dtype=BF16)
    flops, act = _measure(lambda: model(vid, aud, torch.tensor([900, 900]), text, text), model)
    weights = lambda: _modes(b["memory_table"](), {"bf16": ("bf16", "all"), "fp8": ("fp8", "all"),  # noqa: E731
                                                   "fp8 + block swap 10": ("fp8 + block swap", 10)})
    return {"target": "ovi engine shape", "unit": "forward", "tflop": flops / 2 / 1e12, "target_s": 0.45,
            "activations_gib": act / GIB, "weights_gib": weights, "peak_target_gib": 22.0}


def ltx2() -> dict:
    """Issue 7: the 19B LTX-2 at JUST-DUB-IT's stage-1 in-context shape, cond + uncond batched."""
    b = _bench("ltx2")
    model, native = b["build"]("real", BF16, "cpu")
    args, _, _ = b["inputs"](native, "real", 2, "cpu", BF16)
    flops, act = _measure(lambda: model(*args), model)
    weights = lambda: _modes(b["memory_table"](), {"bf16": ("bf16", "all"), "fp8": ("fp8", "all"),  # noqa: E731
                                                   "fp8 + block swap 16": ("fp8 + block swap", 16)})
    return {"target": "ltx2 in-context 512x768x121", "unit": "forward", "tflop": flops / 2 / 1e12,
            "target_s": 0.75, "activations_gib": act / GIB, "weights_gib": weights, "peak_target_gib": 24.0}


def ltx23() -> dict:
    """Issue 22: the 22B LTX-2.3 in DubIt's layout at its default final size (stage 2: 1024x1536, 121
    frames, reference appended, source audio at negative time; one pass per step, no CFG).

    Run at 1 and 2 blocks, not 48: under no_grad each block's activations are freed before the next
    runs, so the peak is the same, and the FLOPs grow by one block's count per block."""
    from soundstage.models.just_dub_it.config import diffusers_transformer_kwargs
    from soundstage.models.just_dub_it.transformer import InContextTransformer, build_transformer

    b = _bench("ltx2")
    native = b["native_config"]("dubit", "2.3")
    args, _, _ = b["inputs"](native, "dubit", 1, "cpu", BF16)
    measured = []
    for layers in (1, 2):
        with _building_in(BF16):
            model = InContextTransformer(build_transformer(diffusers_transformer_kwargs(
                dict(native, num_layers=layers))).eval().requires_grad_(False))
        measured.append(_measure(lambda: model(*args), model))
    (f1, a1), (f2, a2) = measured
    flops = f1 + (native["num_layers"] - 1) * (f2 - f1)
    weights = lambda: _modes(b["memory_table"](version="2.3"), {  # noqa: E731
        "bf16": ("bf16", "all"), "fp8": ("fp8", "all"), "fp8 + block swap 16": ("fp8 + block swap", 16),
        "fp8 + block swap 8": ("fp8 + block swap", 8)})
    return {"target": "ltx23 dubit stage 2 1024x1536x121", "unit": "forward", "tflop": flops / 1e12,
            "target_s": None, "activations_gib": max(a1, a2) / GIB, "weights_gib": weights,
            "peak_target_gib": 24.0}


def mtv() -> dict:
    """Issue 8: 50 steps at 49x480x720 with CFG batched (batch 2); audio projected once per chunk."""
    from soundstage.models.mtv.audio_modules import MSTConfig
    from soundstage.models.mtv.memory import store_fp8
    from soundstage.models.mtv.transformer import BackboneConfig, MTVTransformer

    with _building_in(BF16):
        model = MTVTransformer(BackboneConfig(), MSTConfig()).eval()
    c, steps, batch = model.config, 50, 2
    frames = (c.latent_frames - 1) * 4 + 1
    projectors = {"vocal": model.audio.audio_proj, "effect": model.audio.audio_proj_effect,
                  "music": model.audio.audio_proj_music}
    tokens = {}

    def project():  # what MTVTransformer.project_audio runs, without moving the projectors
        for stream, proj in projectors.items():
            tokens[stream] = proj(torch.randn(batch, frames, 5, 12, 768, dtype=BF16))

    shape = (batch, c.latent_frames, c.out_channels, c.latent_height, c.latent_width)
    latents, image = torch.randn(shape), torch.randn(shape)
    context = torch.randn(batch, c.text_length, c.text_embed_dim, dtype=BF16)
    audio, _ = _measure(project, model)
    step, act = _measure(lambda: model(latents, context, torch.full((batch,), 900), tokens, image_latents=image), model)

    def weights() -> dict[str, float]:  # the three audio projectors are streamed in once per chunk
        with torch.device("meta"):
            m = MTVTransformer(BackboneConfig(), MSTConfig()).to(BF16)
        streamed = sum(_gib(p) for n, p in m.audio.named_children() if n.startswith("audio_proj"))
        out = {"bf16": _gib(m) - streamed}
        store_fp8(m)
        return {**out, "fp8": _gib(m) - streamed}

    return {"target": "mtv 49x480x720, 50 steps, CFG", "unit": "generation", "tflop": (audio + steps * step) / 1e12,
            "target_s": 60.0, "activations_gib": act / GIB, "weights_gib": weights, "peak_target_gib": 24.0}


TARGETS = {"mmdit": mmdit, "ovi": ovi, "ltx2": ltx2, "ltx23": ltx23, "mtv": mtv}


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
        with FakeTensorMode():
            row = TARGETS[name]()
        row["weights_gib"] = row["weights_gib"]()  # meta-device tables, outside the fake mode
        row["bound_s"] = row["tflop"] / a.peak_tflops
        row["share_of_peak_needed"] = row["bound_s"] / row["target_s"] if row["target_s"] else None
        row["peak_gib_estimate"] = {mode: w + row["activations_gib"] for mode, w in row.pop("weights_gib").items()}
        rows.append({"name": name, **_rounded(row)})
        print(json.dumps(rows[-1]))
    return rows


def _rounded(value):
    if isinstance(value, float):
        return round(value, 4 if value < 10 else 1)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


if __name__ == "__main__":
    main()
