"""Held-out evaluation of the MTV tiny default: each held-out clip's stems in, video out (the nodes' path:
wav2vec features, MST-ControlNet input, chunked sampler, CogVideoX decode), and what each stream must drive:

- effects -> events: the red ball tracked in the generated frames (ovi_eval's tracker), its floor contacts
  against the effects stem's impact times (median error, a miss = 200 ms);
- speech -> lips: the mouth's area in the generated frames against the world's mouth openness, Pearson r;
- music -> mood: the room's brightness per bar against the bar's mood (major / minor), Pearson r;
- long clips: 3 chunks from 3x-long stems (the chunked path), the contact error of each chunk's new frames.

Conditions: the default; mismatched (the video generated from the next clip's stems against this clip's
truth: what chance gives); the untrained network (the recipe's initialisation, same VAE and encoders);
truth (the world's own frames: how well the measurements do) and the VAE round trip of those frames.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...metrics.events import event_errors
from ...synthworld.render import DARK, MOUTH, SKIN
from .ovi_eval import COLOURS, _sync, video_contacts
from .report import write_report

CONDITIONS = ("default", "mismatched", "untrained", "truth", "vae_round_trip")
BALL = "red"  # the one ball of the even clip indices (synthworld.clip.BALL_COLOURS[0])
MOUTH_RADIUS = 50.0  # RGB distance within which a pixel counts as the mouth's colour
MIN_BAR_FRAMES = 6  # a bar counts for the mood metric when at least this many frames show it
# 3x-long clips: at 8 the first chunk held 11 impacts, and a chunk's median moved 5-10 ms between samplings of the
# same weights; 32 (held-out 100-131) hold 39 / 63 / 97 impacts per chunk
LONG_CLIPS = 32
LONG_CHUNKS = 3


def mouth_openness(frames: np.ndarray) -> np.ndarray:
    """[T] share of the frame in the mouth's colour: nearer to it than to skin, eyes and the red ball."""
    px = frames.astype(np.float32)
    d = np.linalg.norm(px - MOUTH, axis=-1)
    others = np.min([np.linalg.norm(px - c, axis=-1) for c in (SKIN, DARK, COLOURS[BALL])], axis=0)
    return ((d < MOUTH_RADIUS) & (d < others)).mean(axis=(1, 2))


def brightness(frames: np.ndarray) -> np.ndarray:
    """[T] the room's brightness: the median pixel's luminance (the background fills most of the frame)."""
    lum = frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.median(lum.reshape(len(frames), -1), axis=1)


def bar_of_frames(truth: dict, frames: int, fps: float) -> np.ndarray:
    beats = truth["beats"]
    bar = 4 * (beats[1] - beats[0])
    return (np.arange(frames) / fps // bar).astype(int)


def mood_pairs(frames: np.ndarray, truth: dict, fps: float) -> list[tuple[float, float]]:
    """(mean brightness over a bar's frames, the bar's mood) for each bar shown at least MIN_BAR_FRAMES frames."""
    bars = bar_of_frames(truth, len(frames), fps)
    light = brightness(frames)
    moods = truth["mood_per_bar"]
    return [(float(light[bars == b].mean()), float(moods[b])) for b in np.unique(bars)
            if b < len(moods) and (bars == b).sum() >= MIN_BAR_FRAMES]


def pearson(pairs) -> float | None:
    a = np.asarray(list(pairs), np.float64)
    if len(a) < 3 or a[:, 0].std() == 0 or a[:, 1].std() == 0:
        return None
    return round(float(np.corrcoef(a[:, 0], a[:, 1])[0, 1]), 3)


def contact_errors(frames: np.ndarray, truth: dict, fps: float) -> list[float]:
    """Per impact of the effects stem: the distance (s) to the nearest floor contact of the tracked ball."""
    contacts = np.asarray(video_contacts(frames, {BALL}, fps))
    return event_errors(contacts, [e["time"] for e in truth["impacts"]])


def measure(frames: np.ndarray, truth: dict, fps: float) -> dict:
    n = min(len(frames), len(truth["mouth_openness"]))
    return {"contact_errors_s": contact_errors(frames, truth, fps),
            "mouth": list(zip(mouth_openness(frames[:n]).tolist(), truth["mouth_openness"][:n])),
            "mood": mood_pairs(frames, truth, fps)}


@torch.no_grad()
def generate(model, vae, wav2vec, context: torch.Tensor, clip, scale, seed: int) -> np.ndarray:
    """uint8 [T, H, W, 3] from a clip's stems, through the pipeline the nodes run (chunks when longer than 49)."""
    from ...pipelines.mtv import build_control, decode_latents, sample_latents, wav2vec_windows
    from .mtv import FPS, STEMS, audio_dict

    clip_length = (model.config.latent_frames - 1) * 4 + 1
    feats = {s: wav2vec_windows(audio_dict(clip.stems[stem]), wav2vec, FPS, clip_length) for s, stem in STEMS.items()}
    control = build_control(feats["vocal"], feats["effect"], feats["music"])
    latent = sample_latents(model, context[None], control, seed=seed, steps=scale.sample_steps, cfg=scale.guidance,
                            vae=vae)
    frames = decode_latents(vae, latent).numpy()
    return (frames * 255).round().astype(np.uint8)


@torch.no_grad()
def round_trip(vae, frames: np.ndarray) -> np.ndarray:
    from ...models.mtv.vae import decode_frames, encode_frames

    z = encode_frames(vae, torch.from_numpy(frames).float() / 255, torch.Generator().manual_seed(0))
    return (decode_frames(vae, z).numpy() * 255).round().astype(np.uint8)


def summarise(rows: list[dict]) -> dict:
    out = {}
    for cond in CONDITIONS:
        out[cond] = {"events": _sync(e for r in rows for e in r[cond]["contact_errors_s"]),
                     "lips_r": pearson(p for r in rows for p in r[cond]["mouth"]),
                     "mood_r": pearson(p for r in rows for p in r[cond]["mood"])}
    return out


@torch.no_grad()
def evaluate_long(model, vae, wav2vec, encoder_path, scale, seed: int, clips: int = LONG_CLIPS,
                  chunks: int = LONG_CHUNKS) -> dict:
    """``chunks`` chunks from ``chunks``x-long stems; each chunk's new frames (the first chunk's 49, then 44 each)
    get the contact errors of the impacts that fall in them."""
    from . import mtv

    frames = mtv.chunked_frames(scale, chunks)
    held = mtv.mtv_clips("heldout", clips, scale, frames=frames)
    texts = mtv.encode_prompts(encoder_path, [c.prompt for c in held], model.config.text_length)
    per_chunk = [[] for _ in range(chunks)]
    starts = [0] + [mtv.chunked_frames(scale, k) for k in range(1, chunks)]  # where each chunk's new frames begin
    for i, c in enumerate(held):
        video = generate(model, vae, wav2vec, texts[i], c, scale, seed + i)
        contacts = np.asarray(video_contacts(video, {BALL}, mtv.FPS))
        for e in c.truth["impacts"]:
            k = int(np.searchsorted(starts, e["frame"], side="right")) - 1
            per_chunk[k] += event_errors(contacts, [e["time"]])
    return {"clips": clips, "chunks": chunks, "frames": frames,
            "per_chunk": [_sync(errs) for errs in per_chunk]}


@torch.no_grad()
def evaluate_mtv(recipe, weights: Path, out: Path, scale, *, clips: int, seed: int) -> dict:
    from . import mtv

    out.mkdir(parents=True, exist_ok=True)
    model, vae, wav2vec, encoder_path = mtv.load_parts(weights)
    held = mtv.mtv_clips("heldout", clips, scale)
    features = mtv.stream_features(wav2vec, held[0])["vocal"]  # the window shape the recipe builds the model for
    untrained = mtv.new_model(scale, features, seed + 2).eval()  # the recipe's initialisation
    texts = mtv.encode_prompts(encoder_path, [c.prompt for c in held], model.config.text_length)
    made = {"default": [], "untrained": [], "truth": [], "vae_round_trip": []}
    for i, c in enumerate(held):
        made["default"].append(generate(model, vae, wav2vec, texts[i], c, scale, seed + i))
        made["untrained"].append(generate(untrained, vae, wav2vec, texts[i], c, scale, seed + i))
        made["truth"].append(c.frames)
        made["vae_round_trip"].append(round_trip(vae, c.frames))
    n = len(held)
    made["mismatched"] = [made["default"][(i + 1) % n] for i in range(n)]  # another clip's stems, this clip's truth
    rows = []
    for i, c in enumerate(held):
        row = {"clip": f"heldout/{c.index}", "impacts": [e["time"] for e in c.truth["impacts"]]}
        for cond in CONDITIONS:
            row[cond] = measure(made[cond][i], c.truth, mtv.FPS)
        rows.append(row)
    summary = summarise(rows)
    long = evaluate_long(model, vae, wav2vec, encoder_path, scale, seed, clips=min(LONG_CLIPS, n))
    result = {"system": recipe.system, "task": "stems to video", "clips": [r["clip"] for r in rows],
              "conditions": list(CONDITIONS), "summary": summary, "long_clip": long, "per_clip": rows,
              "sampling": {"steps": scale.sample_steps, "cfg": scale.guidance}}
    result["table"] = table(result)
    write_report(out, result, text="\n".join([f"# mtv: {result['task']} on {n} held-out clips", ""] + result["table"])
                 + "\n", metrics=())
    return result


def table(result: dict) -> list[str]:
    sm = result["sampling"]
    lines = [f"Sampling (as the workflow samples): {sm['steps']} steps, guidance {sm['cfg']}.", "",
             "Events: the red ball tracked in the video, each impact of the effects stem matched to its nearest floor "
             "contact (median ms, a miss = 200 ms). Lips: Pearson r of the mouth's area per frame against the world's "
             "mouth openness. Mood: Pearson r of the room's brightness per bar against the bar's mood. Mismatched: "
             "the video made from the next clip's stems against this clip's truth.", "",
             "| condition | events median ms | events miss rate | impacts | lips r | mood r |", "|---|---|---|---|---|---|"]
    for cond, m in result["summary"].items():
        ev = m["events"]
        lines.append(f"| {cond} | {ev['median_ms']} | {ev['miss_rate']} | {ev['contacts']} | {m['lips_r']} | "
                     f"{m['mood_r']} |")
    lo = result.get("long_clip")
    if lo:
        chunks = ", ".join(f"chunk {k + 1}: {c['median_ms']} ms ({c['contacts']} impacts)"
                           for k, c in enumerate(lo["per_chunk"]))
        lines += ["", f"Long clips ({lo['clips']} clips of {lo['frames']} frames, {lo['chunks']} chunks): events "
                      f"median error per chunk: {chunks}."]
    return lines


__all__ = ["CONDITIONS", "brightness", "contact_errors", "evaluate_mtv", "measure", "mood_pairs", "mouth_openness",
           "pearson", "summarise"]
