"""Training the tiny Synchformer so that its tokens carry timing: distilled onto an oracle sync stream.

Synchformer learns audio-visual synchrony contrastively on millions of clips; on a 2-core CPU the tiny
encoder (released layout) instead learns to output, for each of its tokens, the **oracle stream**: the
ground-truth event envelope (a Gaussian bump of ENVELOPE_S around every ball contact and every lamp
blink; impacts and beeps as two channels) at the time of the token's own tubelet (segment s, tubelet j:
frames 8s + 2j and 8s + 2j + 1 at 25 fps), through a fixed random projection into ``sync_dim``.

Why the tubelet's own time (benchmarks/tiny_defaults_feasibility.md, round 3): the MMDiT reads token
k = 8s + j at (k + 0.5) * seconds / n_tokens (MMAudio's nearest-exact upsampling of the overlapping
segments' tokens), which differs from the tubelet's time by a term that grows with s (80 ms per segment at
2 s); a Synchformer sees one segment and cannot know s, so a target on the MMDiT's timeline is
ill-posed (measured: nothing learned). The tubelet's own time is what each segment can see.
"""
from __future__ import annotations

import random
from typing import Iterator

import numpy as np
import torch

from ...models.audiogen_omni.preprocess import SYNC_FPS, SYNC_SEGMENT, SYNC_STRIDE, load_video_frames, sync_pixels

ENVELOPE_S = 0.03  # under one 25 fps frame: the sync tolerance is 40 ms
PROJECTION_SEED = 123  # the fixed random map from the two envelope channels into sync_dim
TOKENS_PER_SEGMENT = SYNC_SEGMENT // 2  # one token per 2-frame tubelet
KINDS = ("impacts", "beeps")
# A third channel for the talking face: the mouth's openness at the tubelet's time, so that the speech default's
# tokens carry the lips' timing (round 6 of benchmarks/tiny_defaults_feasibility.md: without it the video added
# little to the transcript's timing)
MOUTH = "mouth"


def clip_pixels(frames: np.ndarray, fps: float, seconds: float) -> torch.Tensor:
    """[T, 3, 224, 224] fp16 in [-1, 1]: the frames inference gives the Synchformer (fp16 to halve the memory)."""
    picked = load_video_frames(torch.from_numpy(frames), fps, seconds, clip_size=None)
    return sync_pixels(picked.sync_frames).half()


def n_tokens(n_frames: int) -> int:
    """Tokens ``encode_video`` gives for ``n_frames`` frames (16-frame segments, stride 8, 8 tokens each)."""
    return ((n_frames - SYNC_SEGMENT) // SYNC_STRIDE + 1) * TOKENS_PER_SEGMENT


def token_times(n_frames: int) -> np.ndarray:
    """Centre time (s) of every token of ``encode_video``: segment i, tubelet j covers frames 8i+2j, 8i+2j+1."""
    segments = n_tokens(n_frames) // TOKENS_PER_SEGMENT
    return np.array([(SYNC_STRIDE * i + 2 * j + 1) / SYNC_FPS for i in range(segments)
                     for j in range(TOKENS_PER_SEGMENT)])


def event_envelope(times: np.ndarray, events: list[float]) -> np.ndarray:
    if not events:
        return np.zeros_like(times)
    d = np.abs(times[:, None] - np.asarray(events)[None]).min(axis=1)
    return np.exp(-0.5 * (d / ENVELOPE_S) ** 2)


def projection(dim: int, channels: int = len(KINDS)) -> torch.Tensor:
    """[channels, dim]: fixed, so the oracle stream of a clip is the same in every run; the first rows are the
    same for any ``channels`` (one seeded draw, row by row), so the mouth channel leaves the event rows as they were."""
    return torch.randn(channels, dim, generator=torch.Generator().manual_seed(PROJECTION_SEED))


def mouth_track(times: np.ndarray, openness: list[float], fps: float) -> np.ndarray:
    """The mouth's openness (per video frame, frame k centred at (k + 0.5) / fps) at ``times``."""
    return np.interp(times, (np.arange(len(openness)) + 0.5) / fps, np.asarray(openness, np.float64))


def oracle_stream(events: dict[str, list[float]], n_frames: int, dim: int,
                  mouth: tuple[list[float], float] | None = None) -> torch.Tensor:
    """[n_tokens(n_frames), dim]: what a perfectly timed Synchformer would output for a clip with these events
    (and, with ``mouth`` = (per-frame openness, fps), the mouth's openness as a third channel)."""
    times = token_times(n_frames)
    channels = [event_envelope(times, events.get(kind, [])) for kind in KINDS]
    if mouth is not None:
        channels.append(mouth_track(times, *mouth))
    env = np.stack(channels, axis=1)
    return torch.from_numpy(env).float() @ projection(dim, len(channels))


def distill_loss(model, batch):
    """Mean squared error between the Synchformer's tokens and the oracle stream of their segment."""
    segments, target = batch
    loss = (model(segments)[:, 0].float() - target).pow(2).mean()
    return loss, {"mse": float(loss.detach())}


def segment_batches(pixels: list[torch.Tensor], targets: list[torch.Tensor], batch: int,
                    seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Random 16-frame segments (the Synchformer's unit) with the oracle rows of their 8 tokens."""
    rng = random.Random(seed)
    index = [(c, s) for c, p in enumerate(pixels) for s in range((p.shape[0] - SYNC_SEGMENT) // SYNC_STRIDE + 1)]
    k = TOKENS_PER_SEGMENT
    while True:
        segs, rows = [], []
        for c, s in rng.sample(index, min(batch, len(index))):
            # stored channels-first: the Synchformer's [T, C] -> [C, T] permute is then a free view (no copy
            # before its Conv3d; measured 0.35 -> 0.2 s a step at one thread)
            segs.append(pixels[c][SYNC_STRIDE * s: SYNC_STRIDE * s + SYNC_SEGMENT].transpose(0, 1).float())
            rows.append(targets[c][k * s: k * (s + 1)])
        yield torch.stack(segs)[:, None].transpose(2, 3), torch.stack(rows)


def probe_channels(tokens: torch.Tensor, channels: int = len(KINDS)) -> np.ndarray:
    """[n_tokens, channels]: the oracle's channels read back from tokens (least squares through its projection)."""
    return torch.linalg.lstsq(projection(tokens.shape[-1], channels).T, tokens.float().T).solution.T.numpy()


def probe_grid(tokens: torch.Tensor, channels: int = len(KINDS)) -> tuple[np.ndarray, np.ndarray]:
    """(tubelet times [G], channels read back at each [G, channels]): averaged over the segments that see a tubelet
    (consecutive segments overlap by half)."""
    env = probe_channels(tokens, channels)
    times = token_times(SYNC_SEGMENT + SYNC_STRIDE * (tokens.shape[0] // TOKENS_PER_SEGMENT - 1))
    grid = np.unique(times)
    return grid, np.stack([env[times == t].mean(axis=0) for t in grid])


def probe_events(tokens: torch.Tensor, threshold: float = 0.3, channels: int = len(KINDS)) -> dict[str, list[float]]:
    """Event times read back from Synchformer tokens [n_tokens, dim]: the least-squares inverse of the oracle's
    projection, averaged over the two segments that see each tubelet, peaks above ``threshold`` refined by a
    log-parabola through their neighbours (exact for the Gaussian envelope: tubelets are 80 ms apart)."""
    grid, env = probe_grid(tokens, channels)
    step = float(grid[1] - grid[0]) if len(grid) > 1 else 0.0
    out = {}
    for k, kind in enumerate(KINDS):
        e = env[:, k]
        found = []
        for i in range(len(e)):
            left, right = e[max(i - 1, 0)], e[min(i + 1, len(e) - 1)]
            if e[i] > threshold and e[i] >= left and e[i] > right:
                a, b, c = np.log(np.maximum([left, e[i], right], 1e-3))
                shift = 0.5 * (a - c) / (a - 2 * b + c) if 0 < i < len(e) - 1 and a - 2 * b + c < 0 else 0.0
                found.append(float(grid[i] + np.clip(shift, -0.5, 0.5) * step))
        out[kind] = found
    return out


def probe_report(streams: list[torch.Tensor], events: list[dict], channels: int = len(KINDS)) -> dict:
    """How well token streams time the clips' events: median error (ms) and miss rate over all events."""
    from ...metrics.events import event_errors, onset_precision

    errs, prec = [], []
    for tokens, ev in zip(streams, events):
        found = probe_events(tokens, channels=channels)
        for kind in KINDS:
            if ev.get(kind):
                errs += event_errors(np.asarray(found[kind]), ev[kind])
            if found[kind]:
                prec.append(onset_precision(np.asarray(found[kind]), ev.get(kind, [])))
    errs = np.asarray(errs)
    return {"events": int(errs.size), "median_ms": round(float(np.median(errs)) * 1000, 1) if errs.size else None,
            "miss_rate": round(float(np.mean(errs >= 0.2)), 3) if errs.size else None,
            "precision": round(float(np.mean(prec)), 3) if prec else None}


__all__ = ["ENVELOPE_S", "KINDS", "MOUTH", "clip_pixels", "distill_loss", "event_envelope", "mouth_track", "n_tokens",
           "oracle_stream", "probe_channels", "probe_events", "probe_grid", "probe_report", "projection", "segment_batches",
           "token_times"]
