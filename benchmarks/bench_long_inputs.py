"""Long inputs through the MMDiT path: timing drift per window and seam audibility on a synthetic clip.

    python benchmarks/bench_long_inputs.py                   # 60 s clip, 8 s windows, 1 s overlaps
    python benchmarks/bench_long_inputs.py --seconds 120 --window 6.4 --overlap 0.64 --json

``--default`` measures the pack's trained AudioGen-Omni tiny default (defaults/, issue 16) end to end on
a long held-out clip of the world: its Synchformer reads the frames, its MMDiT samples in windows of its
trained length, its VAE and vocoder make the waveform, scored window by window against the impacts and
beeps (``measure_default``). Without it, timing is measured with a deterministic oracle
"model" that renders every impact its window's Synchformer tokens announce, at the time they announce,
through the same window plan, conditioning slices and crossfade as the MMDiT Sampler
(``pipelines.audiogen_omni.mmdit_windows`` / ``windowed_latent``). Its waveform is scored by the
metrics' onset detector against the synthetic world's known impact times, window by window: an error
that grows from window to window would be drift from the placement itself. The seam metric is
measured twice: on the oracle's waveform (impacts over an ambience drawn from the shared noise) and
on the latents of a random tiny 16 kHz MMDiT sampled in windows (the real network and sampler).
"""
from __future__ import annotations

import argparse
import json
import runpy
from pathlib import Path

ensure_pack = runpy.run_path(str(Path(__file__).with_name("_pack.py")))["ensure_pack"]
ensure_pack()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from soundstage.metrics.events import detect_onsets, event_errors  # noqa: E402
from soundstage.models.audiogen_omni.preprocess import SYNC_FPS, SYNC_STRIDE, sync_seq_len  # noqa: E402
from soundstage.models.audiogen_omni.mmdit import SYNC_TOKENS_PER_SEGMENT  # noqa: E402
from soundstage.models.audiogen_omni.sampler import initial_noise  # noqa: E402
from soundstage.models.common.chunking import jump_report, latent_jumps, seam_report  # noqa: E402
from soundstage.pipelines import audiogen_omni  # noqa: E402
from soundstage.synthworld import sounds  # noqa: E402
from soundstage.synthworld.clip import ClipSpec, generate_clip  # noqa: E402
from soundstage.testing.audiogen_omni import tiny_mmdit  # noqa: E402

SAMPLE_RATE = 16000
SAMPLES_PER_LATENT = 512  # MMAudio 16 kHz: 31.25 latent frames per second, 10 per 0.32 s window step
PIECE_SECONDS = 5.0  # the world's bouncing balls come to rest after ~8 s: the long clip strings 5 s scenes
MIN_GAP = 0.25  # impacts closer than this to another one are not scored (one onset would cover both)
TOKEN_SECONDS = 2 / SYNC_FPS  # a Synchformer token covers 2 of its segment's 16 frames


def world_events(seconds: float, *, seed: int = 0, fps: int = 25) -> list[float]:
    """Impact times (s) of a ``seconds``-long clip of the synthetic world: 5 s scenes one after another."""
    events = []
    for k in range(int(np.ceil(seconds / PIECE_SECONDS))):
        clip = generate_clip(ClipSpec(seed=seed + k, seconds=PIECE_SECONDS, fps=fps, width=16, height=16,
                                      speech=False, n_balls=1, profile_views=False, head_motion=False))
        events += [k * PIECE_SECONDS + i["time"] for i in clip.truth["impacts"]]
    events = sorted(t for t in events if t < seconds - 0.3)
    return [t for i, t in enumerate(events)
            if (i == 0 or t - events[i - 1] >= MIN_GAP) and (i + 1 == len(events) or events[i + 1] - t >= MIN_GAP)]


def oracle_sync_features(events: list[float], seconds: float, dim: int) -> torch.Tensor:
    """Synchformer-shaped tokens [1, n, dim] that announce each event: segment s covers frames 8s..8s+15,
    its token j frames 8s+2j and 8s+2j+1; channel 0 flags an event there, channel 1 its offset (s)."""
    n = sync_seq_len(seconds)
    feats = torch.zeros(1, n, dim)
    for t in events:
        frame = int(t * SYNC_FPS)
        for seg in range(max(0, (frame - 15) // SYNC_STRIDE), frame // SYNC_STRIDE + 1):
            k = seg * SYNC_TOKENS_PER_SEGMENT + (frame - seg * SYNC_STRIDE) // 2
            if 0 <= frame - seg * SYNC_STRIDE < 2 * SYNC_TOKENS_PER_SEGMENT and k < n:
                feats[0, k, 0] = 1.0
                feats[0, k, 1] = t - (seg * SYNC_STRIDE + 2 * ((frame - seg * SYNC_STRIDE) // 2)) / SYNC_FPS
    return feats


def oracle_window(latent_rate: float, latent_dim: int):
    """A deterministic stand-in for the network: window-local impact times from the window's own tokens,
    written as 1 in latent channel 0; channel 1 carries the window's noise slice (an ambience)."""

    def sample_window(w, callback=None):
        b = 1 if w.noise is None else w.noise.shape[0]
        lat = torch.zeros(b, w.latent_len, latent_dim)
        if w.noise is not None:
            lat[:, :, 1] = w.noise[:, :, 1]
        k = torch.nonzero(w.sync[0, :, 0] > 0.5).flatten()
        seg, j = k // SYNC_TOKENS_PER_SEGMENT, k % SYNC_TOKENS_PER_SEGMENT
        local = (seg * SYNC_STRIDE + 2 * j).double() / SYNC_FPS + w.sync[0, k, 1].double()
        for t in sorted({round(float(x), 6) for x in local}):
            f = int(round(t * latent_rate))
            if f < w.latent_len:
                lat[:, f, 0] = 1.0
        return lat

    return sample_window


def render(latent: torch.Tensor, seconds: float) -> torch.Tensor:
    """The oracle's "decoder": an impact sound at each latent frame flagged in channel 0, over an
    ambience (noise at a level following channel 1); the world's own impact synthesis."""
    n = int(round(seconds * SAMPLE_RATE))
    rng = np.random.default_rng(0)
    amb = latent[0, :, 1].numpy()
    level = 0.01 * (1 + 0.5 * np.tanh(np.repeat(amb, SAMPLES_PER_LATENT)[:n]))
    wave = (rng.standard_normal(n) * level).astype(np.float32)
    for f in torch.nonzero(latent[0, :, 0] > 0.5).flatten().tolist():
        hit = float(latent[0, f, 0]) * sounds.impact(SAMPLE_RATE, rng, 1.2)
        sounds.place(wave, hit, f * SAMPLES_PER_LATENT / SAMPLE_RATE, SAMPLE_RATE)
    return torch.from_numpy(wave)


def _nearest(onsets: np.ndarray, t: float) -> float:
    return float(onsets[np.argmin(np.abs(onsets - t))]) if len(onsets) else float("inf")


def net_16k(seed: int = 0):
    return tiny_mmdit(seed, sample_rate=SAMPLE_RATE, samples_per_latent=SAMPLES_PER_LATENT, latent_seq_len=250,
                      clip_seq_len=64, sync_seq_len=192)


def measure(seconds: float = 60.0, window: float = 8.0, overlap: float = 1.0, *, seed: int = 0,
            model_steps: int = 2, fps: float = 25.0) -> dict:
    net = net_16k(seed)
    cfg = net.config
    latent_rate = cfg.sample_rate / cfg.samples_per_latent
    events = world_events(seconds, seed=seed)
    sync = oracle_sync_features(events, seconds, cfg.sync_dim)
    n = net.latent_len_for(seconds)
    noise = initial_noise(1, n + 2, cfg.latent_dim, seed)
    windows = audiogen_omni.mmdit_windows(net, seconds, window, overlap, None, sync, None, noise)
    oracle = oracle_window(latent_rate, cfg.latent_dim)
    chunked = render(audiogen_omni.windowed_latent(windows, n, oracle, 1), seconds)
    whole = render(oracle(audiogen_omni.MMDiTWindow(0.0, seconds, 0, n, None, sync, None, noise[:, :n])), seconds)
    onsets, onsets_whole = detect_onsets(chunked.numpy(), SAMPLE_RATE), detect_onsets(whole.numpy(), SAMPLE_RATE)
    per_window = []
    for w in windows:
        mine = [t for t in events if w.start_s <= t < w.start_s + w.duration_s]
        err = np.asarray(event_errors(onsets, mine)) * 1000
        ref = np.asarray(event_errors(onsets_whole, mine)) * 1000
        # Drift the windows add: each event's nearest onset, chunked against one pass over the whole clip.
        shift = [1000 * abs(_nearest(onsets, t) - _nearest(onsets_whole, t)) for t in mine]
        per_window.append({"start_s": round(w.start_s, 3), "seconds": round(w.duration_s, 3), "events": len(mine),
                           "median_ms": float(np.median(err)) if err.size else None,
                           "max_ms": float(err.max()) if err.size else None,
                           "max_ms_one_pass": float(ref.max()) if ref.size else None,
                           "shift_vs_one_pass_ms": max(shift, default=0.0)})
    borders = sorted({w.start_s for w in windows[1:]} | {w.start_s + w.duration_s for w in windows[:-1]})
    oracle_seams = seam_report(chunked, SAMPLE_RATE, borders)
    # The real (random, tiny) network and sampler over the same plan: seams in its latents.
    visual = {"clip": torch.randn(1, int(seconds * 8), cfg.clip_dim),
              "sync": torch.randn(1, sync.shape[1], cfg.sync_dim), "duration_s": seconds}
    text = {"features": torch.randn(1, 6, cfg.text_dim), "mask": None, "negative": None, "negative_mask": None}
    latent, _ = audiogen_omni.generate_latent(net, duration=seconds, steps=model_steps, cfg=4.5, seed=seed,
                                              visual=visual, text=text, window_seconds=window,
                                              overlap_seconds=overlap)
    env, sp = latent_jumps(latent[0].T)
    model_seams = jump_report(env, sp, 1 / latent_rate, borders, guard_seconds=0.1)
    frame = 1000 / fps
    return {"seconds": seconds, "window_s": window, "overlap_s": overlap, "windows": len(windows),
            "events": len(events), "video_frame_ms": frame, "per_window": per_window,
            "worst_window_ms": max(p["max_ms"] for p in per_window if p["max_ms"] is not None),
            "oracle_seams": oracle_seams, "model_latent_seams": model_seams}


def long_world_clip(seconds: float, *, size: int = 128, first_index: int = 100):
    """Frames [T, H, W, 3] and event times ({"impacts", "beeps"}) of held-out v2a scenes strung end to end
    (scenes of PIECE_SECONDS: the balls come to rest after ~8 s); events closer than MIN_GAP to another
    event of either kind are left out (one onset would cover both)."""
    from soundstage.synthworld.splits import clip_spec
    from soundstage.training.defaults.world import event_times

    frames, events = [], []
    for k in range(int(np.ceil(seconds / PIECE_SECONDS))):
        clip = generate_clip(clip_spec("heldout", first_index + k, task="v2a", seconds=PIECE_SECONDS, size=size))
        frames.append(clip.frames)
        for kind, times in event_times(clip.truth).items():
            events += [(k * PIECE_SECONDS + t, kind) for t in times]
    frames = np.concatenate(frames)[: int(round(seconds * 25))]
    events = sorted(e for e in events if e[0] < seconds - 0.3)
    kept = [e for i, e in enumerate(events) if (i == 0 or e[0] - events[i - 1][0] >= MIN_GAP)
            and (i + 1 == len(events) or events[i + 1][0] - e[0] >= MIN_GAP)]
    return frames, {kind: [t for t, k in kept if k == kind] for kind in ("impacts", "beeps")}


@torch.no_grad()
def measure_default(seconds: float = 60.0, *, steps: int = 16, seed: int = 0, window: float | None = None,
                    overlap: float = 0.64) -> dict:
    """The shipped default over a long clip: per-window onset error against the world's events and seams."""
    from soundstage.training.defaults import audiogen_omni as ag
    from soundstage.training.defaults.cli import _installed
    from soundstage.training.defaults.evaluate import load_v2a

    weights = _installed("audiogen_omni")
    if weights is None:
        raise FileNotFoundError("no AudioGen-Omni tiny default in defaults/ (train-defaults audiogen_omni --install)")
    vae, voc, sf, net = load_v2a(weights, ag.FILES)
    cfg = net.config
    latent_rate = cfg.sample_rate / cfg.samples_per_latent
    if window is None:  # the longest window on the 0.32 s grid within the default's trained length
        window = int(cfg.latent_seq_len / latent_rate / 0.32) * 0.32
    frames, kinds = long_world_clip(seconds)
    visual = {"clip": None, "sync": ag.sync_features(sf, frames, 25, seconds)[None], "duration_s": seconds}
    latent, duration = audiogen_omni.generate_latent(net, duration=seconds, steps=steps, cfg=1.0, seed=seed,
                                                    visual=visual, window_seconds=window, overlap_seconds=overlap)
    wave = voc(vae.decode(latent))[0, 0].numpy()  # generate_latent gives [B, C, T], the VAE's layout
    onsets = detect_onsets(wave, SAMPLE_RATE)
    n = net.latent_len_for(duration)
    windows = audiogen_omni.mmdit_windows(net, duration, window, overlap, None, visual["sync"], None,
                                          initial_noise(1, n + 2, cfg.latent_dim, seed))

    def scored(times: list[float]) -> dict:
        err = np.asarray(event_errors(onsets, times)) * 1000
        return {"events": len(times), "median_ms": float(np.median(err)) if err.size else None,
                "max_ms": float(err.max()) if err.size else None}

    events = sorted(kinds["impacts"] + kinds["beeps"])
    per_window = []
    for w in windows:
        inside = lambda times: [t for t in times if w.start_s <= t < w.start_s + w.duration_s]  # noqa: E731
        per_window.append({"start_s": round(w.start_s, 3), "seconds": round(w.duration_s, 3), **scored(inside(events)),
                           "impacts": scored(inside(kinds["impacts"])), "beeps": scored(inside(kinds["beeps"]))})
    borders = sorted({w.start_s for w in windows[1:]} | {w.start_s + w.duration_s for w in windows[:-1]})
    all_err = np.asarray(event_errors(onsets, events)) * 1000
    halves = [np.median(all_err[: len(all_err) // 2]), np.median(all_err[len(all_err) // 2:])]
    return {"seconds": seconds, "window_s": window, "overlap_s": overlap, "windows": len(windows),
            "events": len(events), "video_frame_ms": 1000 / 25, "per_window": per_window,
            "median_ms": float(np.median(all_err)), "median_ms_first_half": float(halves[0]),
            "median_ms_second_half": float(halves[1]), "miss_rate": float(np.mean(all_err >= 200)),
            "impacts": scored(kinds["impacts"]), "beeps": scored(kinds["beeps"]),
            "seams": seam_report(torch.from_numpy(wave.copy()), SAMPLE_RATE, borders)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--window", type=float, default=8.0)
    ap.add_argument("--overlap", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print the whole report as JSON")
    ap.add_argument("--default", action="store_true", help="the shipped AudioGen-Omni tiny default (windows of its "
                    "trained length unless --window is given) instead of the oracle")
    args = ap.parse_args(argv)
    if args.default:
        window = None if "--window" not in (argv or __import__("sys").argv) else args.window
        print(json.dumps(measure_default(args.seconds, seed=args.seed, window=window), indent=1))
        return 0
    r = measure(args.seconds, args.window, args.overlap, seed=args.seed)
    if args.json:
        print(json.dumps(r, indent=1))
        return 0
    print(f"{r['seconds']:.0f} s clip, {r['windows']} windows of <= {r['window_s']} s sharing {r['overlap_s']} s, "
          f"{r['events']} impacts")
    print("window  start_s  events  median_ms  max_ms  (one pass max_ms)  shift vs one pass (ms)")
    for i, p in enumerate(r["per_window"]):
        fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
        print(f"{i:6d}  {p['start_s']:7.2f}  {p['events']:6d}  {fmt(p['median_ms']):>9}  {fmt(p['max_ms']):>6}  "
              f"({fmt(p['max_ms_one_pass'])})  {p['shift_vs_one_pass_ms']:.1f}")
    print(f"worst impact onset error {r['worst_window_ms']:.1f} ms (one video frame: {r['video_frame_ms']:.1f} ms)")
    for name in ("oracle_seams", "model_latent_seams"):
        for k in ("envelope", "spectrum"):
            s = r[name][k]
            print(f"{name:19s} {k:8s} border max {s['border_max']:.3f} mean {s['border_mean']:.3f}  inside p95 {s['inside_p95']:.3f}  "
                  f"inside max {s['inside_max']:.3f}  ratio to p95 {s['ratio_to_inside_p95']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
