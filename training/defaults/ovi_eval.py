"""Held-out evaluation of the Ovi tiny default: text to audio+video on held-out captions, and i2av from the
held-out clips' first frames.

Sync inside one generation: the ball of the caption's colour is tracked in the generated frames, its floor
contacts are read off its track, and each contact is matched to the nearest onset of the generated audio
(metrics/events.py: median error, a miss counts as 200 ms). Conditions: the default; mismatched (the video of
one generation against the audio of each of the next MISMATCHED_PAIRS generations: what sync by chance gives);
the untrained network (the recipe's initialisation); the world's own clips (truth: how well the tracker and
onset detector do on real frames and sound) and their codec round trip. Prompt following: the set of ball
colours seen in the video equals the caption's, and speech is heard exactly when the prompt has a line.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...metrics.events import MISS_S, detect_onsets, event_errors
from ...synthworld.captions import COLOUR_NAMES
from ...synthworld.render import MOUTH, SKIN
from .report import write_report

CONDITIONS = ("default", "mismatched", "untrained", "truth", "codec_round_trip")
COLOURS = {name: np.array(rgb, np.float32) for rgb, name in COLOUR_NAMES.items()}
NOT_BALL = (MOUTH, SKIN)  # face colours a blurred red ball could be mistaken for
COLOUR_RADIUS = 60.0  # RGB distance within which a pixel counts as a ball's colour
MIN_AREA = 0.002  # share of the frame a ball must cover (a ball of the world covers 0.8-1.5 %)
CONTACT_BAND = 0.75  # a contact is a lowest point of the ball's centre below this share of the frame height
CONTACT_PROMINENCE = 0.025  # ... that it rose at least this share of the height from on both sides
SPEECH_BAND = (250.0, 4000.0)  # Hz: voice energy (the lamp's 1 kHz beep band is left out)
BEEP_BAND = (900.0, 1100.0)
ENVELOPE_HOP = 320  # samples: 20 ms at 16 kHz
LONG_CLIPS = 4  # prompts the 3x-length long-clip check generates
# Audio of this many other generations per video for the mismatched baseline: against only the next one, its
# median swung from 41.5 to 147.8 ms between guidance settings on the same 64 clips (chance: whether the paired
# audio speaks, with ~13 onsets a clip against ~3 when silent; benchmarks/tiny_defaults_ovi.md)
MISMATCHED_PAIRS = 8
SPEECH_MIN_S = 0.4  # voiced time a clip needs to count as speaking (impacts and beeps last < 0.1 s each)


def caption_colours(prompt: str) -> set[str]:
    """Ball colours a prompt names (before the spoken part)."""
    words = prompt.split("<S>")[0].replace(",", " ").split()
    return {w for w, nxt in zip(words, words[1:] + [""]) if w in COLOURS and nxt.startswith("ball")}


def colour_masks(frames: np.ndarray) -> dict[str, np.ndarray]:
    """[T, H, W] bool per ball colour: near the colour and nearer to it than to the face's colours."""
    px = frames.astype(np.float32)
    others = np.min([np.linalg.norm(px - c, axis=-1) for c in NOT_BALL], axis=0)
    out = {}
    for name, rgb in COLOURS.items():
        d = np.linalg.norm(px - rgb, axis=-1)
        out[name] = (d < COLOUR_RADIUS) & (d < others)
    return out


def seen_colours(frames: np.ndarray) -> set[str]:
    """Ball colours covering at least MIN_AREA of the frame in half of the frames or more."""
    area = frames.shape[1] * frames.shape[2]
    return {n for n, m in colour_masks(frames).items() if np.median(m.sum(axis=(1, 2))) >= MIN_AREA * area}


def track(frames: np.ndarray, colour: str) -> np.ndarray:
    """[T, 2] (x, y) centroid of the colour per frame in pixels (NaN where it covers too little)."""
    m = colour_masks(frames)[colour]
    area = frames.shape[1] * frames.shape[2]
    yy, xx = np.mgrid[0:frames.shape[1], 0:frames.shape[2]]
    out = np.full((len(frames), 2), np.nan)
    for i, mi in enumerate(m):
        if mi.sum() >= MIN_AREA * area / 2:
            out[i] = xx[mi].mean(), yy[mi].mean()
    return out


def floor_contacts(y: np.ndarray, fps: float, height: int) -> list[float]:
    """Times (s) of the track's lowest points near the floor, refined by a parabola through the neighbours."""
    from scipy.signal import find_peaks

    y = np.asarray(y, np.float64)
    if np.isnan(y).all():
        return []
    filled = np.interp(np.arange(len(y)), np.flatnonzero(~np.isnan(y)), y[~np.isnan(y)])
    idx, _ = find_peaks(filled, prominence=CONTACT_PROMINENCE * height)
    times = []
    for i in idx:
        if filled[i] < CONTACT_BAND * height:
            continue
        shift = 0.0
        if 0 < i < len(filled) - 1:
            a, b, c = filled[i - 1], filled[i], filled[i + 1]
            if a - 2 * b + c < 0:
                shift = float(np.clip(0.5 * (a - c) / (a - 2 * b + c), -0.5, 0.5))
        times.append((i + shift) / fps)
    return times


def video_contacts(frames: np.ndarray, colours: set[str], fps: float) -> list[float]:
    return sorted(t for c in colours for t in floor_contacts(track(frames, c)[:, 1], fps, frames.shape[1]))


def voiced_seconds(wave: np.ndarray, rate: int, frame_s: float = 0.02) -> float:
    """Time the voice band (beep band left out) stays within 30 dB of the clip's loudest voice-band frame."""
    n = int(frame_s * rate)
    frames = len(wave) // n
    if frames == 0 or not np.isfinite(wave).all():
        return 0.0
    spec = np.abs(np.fft.rfft(np.asarray(wave[: frames * n], np.float64).reshape(frames, n) * np.hanning(n), axis=1))
    f = np.fft.rfftfreq(n, 1 / rate)
    band = (f >= SPEECH_BAND[0]) & (f <= SPEECH_BAND[1]) & ~((f >= BEEP_BAND[0]) & (f <= BEEP_BAND[1]))
    energy = (spec[:, band] ** 2).sum(axis=1)
    if energy.max() <= 0:
        return 0.0
    return float((10 * np.log10(energy / energy.max() + 1e-12) > -30).sum() * frame_s)


def sync_errors(contacts: list[float], wave: np.ndarray, rate: int) -> list[float]:
    return event_errors(detect_onsets(wave, rate), contacts) if contacts else []


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-10)))


def load_parts(weights: Path):
    from ...models.ovi.loader import load_ovi_fusion
    from ...models.ovi.video_vae import load_wan_vae
    from . import ovi

    net = load_ovi_fusion(weights / ovi.FILES["model"], dtype=torch.float32)
    vae = load_wan_vae(weights / ovi.FILES["vae"], dtype=torch.float32)
    enc = ovi.text_encoder(weights, net.config.video.text_len)
    return net, vae, enc


def audio_length(seconds: float) -> int:
    """Audio latents of a clip of ``seconds`` (what the recipe's codec gives: one per 2 mel frames)."""
    from ...models.common.codecs.mel import MEL_16K, LogMel
    from . import codecs

    (_, m), = codecs.waves_and_mels([np.zeros(round(seconds * MEL_16K.sample_rate), np.float32)], LogMel(MEL_16K))
    return m.shape[-1] // 2


def default_sampling(sc, seed: int):
    """The default's sampling: its scale's steps, shift and guidance, no skip-layer guidance (the tiny model has
    no layer 11)."""
    from ...models.ovi.sampler import OviSampling

    return OviSampling(steps=sc.sample_steps, shift=sc.shift, video_cfg=sc.video_cfg, audio_cfg=sc.audio_cfg,
                       slg_layer=0, seed=seed)


@torch.no_grad()
def generate(net, vae, mel_vae, voc, text: torch.Tensor, sc, seed: int, image_latent: torch.Tensor | None = None):
    """(frames uint8 [T, H, W, 3], wave [S]) of one sample through the pack's Ovi sampler and decoders."""
    from ...models.ovi.sampler import OviConditioning, sample_ovi
    from ...models.ovi.video_vae import decode_video

    empty = text.new_zeros(0, text.shape[1])  # the empty prompt (all padding), what text dropout trains
    cond = OviConditioning(text, empty, empty, image_latent)
    s = default_sampling(sc, seed)
    lat = sc.size // 16
    v, a = sample_ovi(net, cond, latent_frames=sc.latent_frames, latent_height=lat, latent_width=lat,
                      audio_length=audio_length(sc.seconds), sampling=s, device="cpu")
    frames = (decode_video(vae, v[None])[0].numpy() * 255).round().astype(np.uint8)
    return frames, voc(mel_vae.decode(a.T[None]))[0, 0].numpy()


@torch.no_grad()
def round_trip(vae, mel_vae, voc, clip):
    """The world's clip through both codecs (the best any generation can look and sound)."""
    from ...models.common.codecs.mel import MEL_16K, LogMel
    from . import codecs
    from .ovi import round_trip_frames

    (_, m), = codecs.waves_and_mels([clip.audio], LogMel(MEL_16K))
    return round_trip_frames(vae, clip.frames), voc(mel_vae.decode(mel_vae.encode(m[None])[0]))[0, 0].numpy()


@torch.no_grad()
def evaluate_ovi(recipe, weights: Path, out: Path, scale, *, clips: int, seed: int) -> dict:
    from ...models.ovi.fusion import OviFusion
    from ...models.ovi.video_vae import encode_image
    from . import ovi

    out.mkdir(parents=True, exist_ok=True)
    net, vae, enc = load_parts(weights)
    mel_vae, voc = ovi.audio_codec()
    torch.manual_seed(seed + 2)
    untrained = OviFusion(net.config).eval()  # the recipe's initialisation
    held = ovi.ovi_clips("heldout", clips, scale)
    texts = enc.encode([c.prompt for c in held])
    rate, fps = 16000, ovi.FPS
    made = {"default": [], "untrained": [], "truth": [], "codec_round_trip": []}
    for i, c in enumerate(held):
        made["default"].append(generate(net, vae, mel_vae, voc, texts[i], scale, seed + i))
        made["untrained"].append(generate(untrained, vae, mel_vae, voc, texts[i], scale, seed + i))
        made["truth"].append((c.frames, c.audio))
        made["codec_round_trip"].append(round_trip(vae, mel_vae, voc, c))
    n = len(held)
    shifts = range(1, max(1, min(MISMATCHED_PAIRS, n - 1)) + 1)
    made["mismatched"] = [(made["default"][i][0], [made["default"][(i + k) % n][1] for k in shifts]) for i in range(n)]
    rows = []
    for i, c in enumerate(held):
        want = caption_colours(c.prompt)
        row = {"clip": f"heldout/{c.index}", "prompt": c.prompt, "speaks": "<S>" in c.prompt}
        for cond in CONDITIONS:
            frames, wave = made[cond][i]
            waves = wave if isinstance(wave, list) else [wave]  # mismatched: the other generations' audio
            contacts = video_contacts(frames, want, fps)
            voiced = voiced_seconds(waves[0], rate)
            row[cond] = {"contacts": [round(t, 3) for t in contacts],
                         "errors_s": [e for w in waves for e in sync_errors(contacts, w, rate)],
                         "colours": sorted(seen_colours(frames)), "balls_match": seen_colours(frames) == want,
                         "voiced_s": round(voiced, 2), "speech_match": (voiced >= SPEECH_MIN_S) == row["speaks"]}
        # the tracker on the world's own frames against the world's own contact times
        row["tracker_vs_truth"] = event_errors(np.asarray(row["truth"]["contacts"]),
                                               [e["time"] for e in c.truth["impacts"]])
        rows.append(row)
    i2av = evaluate_i2av(net, vae, mel_vae, voc, held, texts, scale, seed, encode_image)
    long = evaluate_long(net, vae, mel_vae, voc, held[:LONG_CLIPS], texts[:LONG_CLIPS], scale, seed)
    summary = summarise(rows)
    result = {"system": recipe.system, "task": "text to audio+video (and i2av)", "clips": [r["clip"] for r in rows],
              "conditions": list(CONDITIONS), "summary": summary, "i2av": i2av, "long_clip": long,
              "sampling": {"steps": scale.sample_steps, "shift": scale.shift, "video_cfg": scale.video_cfg,
                           "audio_cfg": scale.audio_cfg},
              "tracker_vs_truth": _sync(e for r in rows for e in r["tracker_vs_truth"]),
              "per_clip": rows}
    result["table"] = table(result)
    write_report(out, result, text="\n".join([f"# ovi: {result['task']} on {n} held-out clips", ""] + result["table"])
                 + "\n", metrics=("median_ms", "share"))
    return result


def evaluate_i2av(net, vae, mel_vae, voc, held, texts, scale, seed: int, encode_image) -> dict:
    """First frame given: PSNR of the generated first frame against it, and the ball's jump from frame 0 to 1
    against the world's own (the clip continues from the image when the two are alike)."""
    psnrs, jumps, world_jumps = [], [], []
    for i, c in enumerate(held):
        image = torch.from_numpy(c.frames[:1]).float() / 255
        frames, _ = generate(net, vae, mel_vae, voc, texts[i], scale, seed + i, image_latent=encode_image(vae, image)[0])
        psnrs.append(psnr(frames[0], c.frames[0]))
        for colour in caption_colours(c.prompt):
            for src, into in ((frames, jumps), (c.frames, world_jumps)):
                tr = track(src[:2], colour)
                if not np.isnan(tr).any():
                    into.append(float(np.linalg.norm(tr[1] - tr[0])))
    return {"first_frame_psnr_median": round(float(np.median(psnrs)), 2),
            "first_frame_psnr_min": round(float(np.min(psnrs)), 2),
            "ball_jump_px_median": round(float(np.median(jumps)), 2) if jumps else None,
            "world_ball_jump_px_median": round(float(np.median(world_jumps)), 2) if world_jumps else None,
            "clips": len(psnrs)}


def ball_steps(frames: np.ndarray, colours: set[str]) -> np.ndarray:
    """[T-1] largest frame-to-frame move (px) of the caption's balls (NaN where one is not seen)."""
    if not colours:
        return np.full(max(0, len(frames) - 1), np.nan)
    return np.max([np.linalg.norm(np.diff(track(frames, c), axis=0), axis=1) for c in colours], axis=0)


def envelope_steps(wave: np.ndarray, rate: int = 16000) -> np.ndarray:
    """[N-1] change of the log RMS envelope (dB) from one ENVELOPE_HOP window to the next."""
    from ...metrics.signals import rms_envelope

    env = 20 * np.log10(rms_envelope(np.asarray(wave, np.float64), rate, rate / ENVELOPE_HOP) + 1e-5)
    return np.abs(np.diff(env))


def _nan_stat(fn, values, *args) -> float | None:
    v = np.asarray(values, float)
    return round(float(fn(v, *args)), 2) if np.isfinite(v).any() else None


@torch.no_grad()
def evaluate_long(net, vae, mel_vae, voc, held, texts, scale, seed: int, chunks: int = 3,
                  reencode: bool = True) -> dict:
    """The long-clip path (models/ovi/long_clip.py, as Ovi Long Clip Sampler runs it): ``chunks`` chunks,
    stitched as the nodes stitch them. At each seam, the ball's move between the frames around it and the
    audio envelope's change over the crossfade, against what the world itself does from frame to frame in
    clips of the same length (its 99th percentile and maximum). ``reencode``: each chunk starts from the
    previous one's last decoded frame encoded as an image (video_vae.last_frame_reencoder), as the node does
    when given the VAE."""
    from ...models.ovi.long_clip import sample_ovi_long, stitch_audio, stitch_frames
    from ...models.ovi.sampler import OviConditioning
    from ...models.ovi.video_vae import decode_video, last_frame_reencoder

    rate, hop = 16000, 512  # one audio latent = 2 mel frames of 256 samples
    lat = scale.size // 16
    seam_ball, seam_env, world_ball, world_env, inside = [], [], [], [], []
    for i, c in enumerate(held):
        empty = texts[i].new_zeros(0, texts[i].shape[1])
        s = default_sampling(scale, seed + i)
        parts = sample_ovi_long(net, OviConditioning(texts[i], empty, empty), chunks=chunks,
                                latent_frames=scale.latent_frames, latent_height=lat, latent_width=lat,
                                audio_length=audio_length(scale.seconds), sampling=s, device="cpu",
                                reencode=last_frame_reencoder(vae) if reencode else None)
        decoded = [(decode_video(vae, p.video[None])[0] * 255).round().to(torch.uint8) for p in parts]
        frames = stitch_frames(decoded, parts[1].video_overlap).numpy()
        waves = [voc(mel_vae.decode(p.audio.T[None]))[0, 0] for p in parts]
        wave = stitch_audio(waves, parts[1].audio_overlap * hop).numpy()
        colours = caption_colours(c.prompt)
        steps, env = ball_steps(frames, colours), envelope_steps(wave, rate)
        start, end, seams = 0, waves[0].shape[-1], set()
        for k, part in enumerate(decoded[:-1]):
            start += part.shape[0] - parts[k + 1].video_overlap  # first frame of chunk k + 1 in the clip
            near = steps[max(0, start - 1): start + 1]
            seams.update(range(max(0, start - 1), start + 1))
            seam_ball.append(float(np.nanmax(near)) if np.isfinite(near).any() else float("nan"))
            # the crossfade stitch_audio makes: from the next chunk's start to the previous chunk's end
            fade = end - min(parts[k + 1].audio_overlap * hop, waves[k + 1].shape[-1])
            a, b = fade // ENVELOPE_HOP, end // ENVELOPE_HOP
            seam_env.append(float(np.max(env[max(0, a - 1): b + 1], initial=0.0)))
            end = fade + waves[k + 1].shape[-1]
        inside += [v for j, v in enumerate(steps) if j not in seams]  # the model's own motion, away from seams
        world = generate_clip_of(c.index, len(frames), scale)
        world_ball += list(ball_steps(world.frames, colours))
        world_env += list(envelope_steps(world.audio, rate))
    wb, we = np.asarray(world_ball, float), np.asarray(world_env, float)
    sb = np.asarray(seam_ball, float)
    return {"chunks": chunks, "clips": len(held), "seams": len(seam_ball), "seams_ball_seen": int(np.isfinite(sb).sum()),
            "seam_ball_move_px_max": round(float(np.nanmax(sb)), 2) if np.isfinite(sb).any() else None,
            "seam_ball_moves_px": [None if not np.isfinite(v) else round(v, 2) for v in sb.tolist()],
            "inside_ball_move_px_p99": _nan_stat(np.nanpercentile, inside, 99),
            "inside_ball_move_px_max": _nan_stat(np.nanmax, inside),
            "world_ball_move_px_p99": round(float(np.nanpercentile(wb, 99)), 2) if np.isfinite(wb).any() else None,
            "world_ball_move_px_max": round(float(np.nanmax(wb)), 2) if np.isfinite(wb).any() else None,
            "seam_envelope_db_max": round(float(np.max(seam_env)), 2) if seam_env else None,
            "world_envelope_db_p99": round(float(np.percentile(we, 99)), 2),
            "world_envelope_db_max": round(float(np.max(we)), 2)}


def generate_clip_of(index: int, frames: int, scale):
    """The held-out world clip ``index`` drawn ``frames`` frames long (what a long generation is compared to)."""
    from dataclasses import replace

    from . import ovi

    longer = replace(scale, latent_frames=(frames - 1) // 4 + 1)
    return ovi.ovi_clips("heldout", 1, longer, start=index)[0]


def _sync(errors) -> dict:
    errs = np.asarray(list(errors), float)
    if not errs.size:
        return {"median_ms": None, "mean_ms": None, "miss_rate": None, "contacts": 0}
    return {"median_ms": round(float(np.median(errs)) * 1000, 1), "mean_ms": round(float(np.mean(errs)) * 1000, 1),
            "miss_rate": round(float(np.mean(errs >= MISS_S)), 3), "contacts": int(errs.size)}


def summarise(rows: list[dict]) -> dict:
    out = {}
    for cond in CONDITIONS:
        out[cond] = {"sync": _sync(e for r in rows for e in r[cond]["errors_s"])
                     | {"clips_with_contacts": sum(bool(r[cond]["contacts"]) for r in rows)},
                     "balls": {"share": round(float(np.mean([r[cond]["balls_match"] for r in rows])), 3)},
                     "speech": {"share": round(float(np.mean([r[cond]["speech_match"] for r in rows])), 3)}}
    return out


def table(result: dict) -> list[str]:
    s, i2av, sm = result["summary"], result["i2av"], result["sampling"]
    lines = [f"Sampling (as the workflows sample): {sm['steps']} steps, shift {sm['shift']}, video / audio guidance "
             f"{sm['video_cfg']} / {sm['audio_cfg']}, no skip-layer guidance.", "",
             "Sync: the ball of the caption's colour tracked in the video, each floor contact matched to the nearest "
             "onset of the same sample's audio (median ms, a miss = 200 ms; mismatched = video of one generation, "
             f"audio of each of the next {MISMATCHED_PAIRS}: contacts counted once per pairing). Balls: share of "
             "clips whose ball colours in the video equal the caption's. "
             "Speech: share of clips with speech heard exactly when the prompt has a line.", "",
             "| condition | sync median ms | sync miss rate | contacts | clips with contacts | balls match | "
             "speech match |", "|---|---|---|---|---|---|---|"]
    for cond, m in s.items():
        sy = m["sync"]
        lines.append(f"| {cond} | {sy['median_ms']} | {sy['miss_rate']} | {sy['contacts']} | "
                     f"{sy['clips_with_contacts']} | {m['balls']['share']} | {m['speech']['share']} |")
    tv = result["tracker_vs_truth"]
    lines += ["", f"Tracker on the world's own frames against its contact times: median {tv['median_ms']} ms, miss rate "
                  f"{tv['miss_rate']} over {tv['contacts']} contacts.", "",
              f"i2av ({i2av['clips']} first frames): generated first frame PSNR median {i2av['first_frame_psnr_median']} dB "
              f"(min {i2av['first_frame_psnr_min']}); ball jump frame 0 -> 1 median {i2av['ball_jump_px_median']} px "
              f"(the world's own: {i2av['world_ball_jump_px_median']} px)."]
    lo = result.get("long_clip")
    if lo:
        lines += ["", f"Long clips ({lo['clips']} prompts x {lo['chunks']} chunks, {lo['seams']} seams, the ball seen "
                      f"at {lo['seams_ball_seen']}): ball move at a seam max {lo['seam_ball_move_px_max']} px (inside the chunks: "
                      f"p99 {lo.get('inside_ball_move_px_p99')}, max {lo.get('inside_ball_move_px_max')} px; the world frame to frame: p99 "
                      f"{lo['world_ball_move_px_p99']}, max {lo['world_ball_move_px_max']} px); audio envelope change "
                      f"over a seam max {lo['seam_envelope_db_max']} dB per 20 ms (the world: p99 "
                      f"{lo['world_envelope_db_p99']}, max {lo['world_envelope_db_max']} dB)."]
    return lines


__all__ = ["CONDITIONS", "caption_colours", "evaluate_ovi", "floor_contacts", "seen_colours", "track",
           "video_contacts", "voiced_seconds"]
