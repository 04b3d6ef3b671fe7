"""Score predicted clips against synthworld references: `soundstage eval --pred DIR --ref DIR`.

The reference folder is a synthworld dataset (manifest.json with ground truth). A prediction for
clip ``ID`` is ``ID.mp4`` (video with its mixed audio) and optionally stems ``ID_speech.wav`` etc.
Metrics whose package is missing, or that cannot score a language, are reported as skipped with
the reason instead of failing the run.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..media.audio_io import load_audio
from ..media.decode import decode_video
from . import quality, sync, timing
from .asr import MetricUnavailable, intelligibility
from .signals import to_mono


def _wave(path: Path) -> tuple[np.ndarray, int]:
    wave, rate = load_audio(str(path))
    return to_mono(wave), rate


def score_clip(pred_dir: Path, ref_dir: Path, entry: dict, *, optional: bool = True, clip_encoder=None) -> dict:
    cid = entry["id"]
    video = pred_dir / f"{cid}.mp4"
    if not video.is_file():
        return {"id": cid, "error": f"no prediction {video.name}"}
    decoded = decode_video(str(video))
    frames = (decoded.frames.numpy() * 255).astype(np.uint8)
    fps = decoded.fps or entry["fps"]
    mix, rate = _wave(video)
    speech_file = pred_dir / f"{cid}_speech.wav"
    speech, srate = _wave(speech_file) if speech_file.is_file() else (mix, rate)
    ref_speech, ref_rate = _wave(ref_dir / entry["speech"])
    out: dict = {"id": cid, "skipped": {}}
    out.update(sync.av_align(frames, mix, rate, fps))
    events = [e["time"] for e in entry.get("impacts", [])] + [e["time"] for e in entry.get("beeps", [])]
    out.update(sync.onset_error(mix, rate, events))
    if entry.get("transcript"):
        mouth = sync.synthworld_mouth_openness(frames)
        out.update(sync.lip_sync(mouth, speech, srate, fps).as_dict(fps))
        if srate == ref_rate:
            out["int_corr"] = timing.int_corr(speech, ref_speech, srate)
            out["dur_err"] = timing.dur_err(speech, ref_speech, srate)
    out["spectral_flatness"] = quality.spectral_flatness(mix)
    if clip_encoder is not None:
        out.update(clip_scores(clip_encoder, frames, ref_dir / entry.get("video", f"{cid}.mp4")))
    for stem in ("speech", "effects", "music"):
        f = pred_dir / f"{cid}_{stem}.wav"
        if f.is_file():
            est, r = _wave(f)
            ref, rr = _wave(ref_dir / entry[stem])
            if r == rr:
                out[f"{stem}_si_snr_db"] = quality.snr_db(est, ref)
    if optional and entry.get("transcript"):
        try:
            out.update({k: v for k, v in intelligibility(speech, srate, entry["transcript"], entry["language"]).items()})
        except MetricUnavailable as exc:
            out["skipped"]["wer"] = str(exc)
        try:
            from .speaker import speaker_similarity

            voice, vr = _wave(ref_dir / entry.get("reference_voice", entry["speech"]))
            if vr == srate:
                out["speaker_similarity"] = speaker_similarity(speech, voice, srate)
        except MetricUnavailable as exc:
            out["skipped"]["speaker_similarity"] = str(exc)
    return out


def clip_scores(encoder, frames: np.ndarray, ref_video: Path) -> dict:
    """Temp-C of the prediction and FD of its CLIP frame embeddings to the reference clip's."""
    from .clip_metrics import clip_video_metrics

    ref = (decode_video(str(ref_video)).frames.numpy() * 255).astype(np.uint8) if ref_video.is_file() else None
    m = clip_video_metrics(encoder, frames, ref)
    return {"temp_c": m["temp_c"], "clip_fd": m["fd"]}


def summarise(rows: list[dict]) -> dict:
    keys = sorted({k for r in rows for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    summary = {}
    for k in keys:
        vals = [r[k] for r in rows if isinstance(r.get(k), (int, float)) and not math.isnan(r[k])]
        if vals:
            summary[k] = float(np.mean(vals))
    return summary


def markdown_table(rows: list[dict], summary: dict) -> str:
    cols = [k for k in ("av_align", "onset_error_ms", "sync_offset_ms", "sync_confidence", "int_corr", "dur_err",
                        "wer", "cer", "speaker_similarity", "spectral_flatness", "temp_c", "clip_fd") if k in summary]
    lines = ["| clip | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else ("" if v is None else str(v))
    for r in rows:
        lines.append(f"| {r['id']} | " + " | ".join(fmt(r.get(c)) for c in cols) + " |")
    lines.append("| **mean** | " + " | ".join(fmt(summary.get(c)) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def plot_offsets(rows: list[dict], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    data = [(r["id"], r["sync_offset_ms"]) for r in rows if "sync_offset_ms" in r]
    fig, ax = plt.subplots(figsize=(max(4, 0.5 * len(data) + 2), 3))
    ax.bar([d[0] for d in data], [d[1] for d in data], color="#2980b9")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_ylabel("lip-sync offset (ms)")
    ax.set_title("Audio lag per clip (positive = audio late)")
    plt.xticks(rotation=45, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def evaluate(pred: str | Path, ref: str | Path, out: str | Path | None = None, *, optional: bool = True,
             clip: str | Path | None = None) -> dict:
    """Score every manifest clip; ``clip`` (CLIP vision weights) adds Temp-C and CLIP FD per clip."""
    pred, ref = Path(pred), Path(ref)
    manifest_path = ref / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"reference folder {ref} has no manifest.json (make one with `soundstage synth`)")
    manifest = json.loads(manifest_path.read_text())
    encoder = None
    if clip is not None:  # asked for explicitly, so unusable weights fail the run instead of being skipped
        from .clip_metrics import load_encoder

        encoder = load_encoder(clip)
    rows = [score_clip(pred, ref, e, optional=optional, clip_encoder=encoder) for e in manifest["clips"]]
    report = {"clips": rows, "summary": summarise(rows)}
    out = Path(out) if out else pred
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1, default=float))
    (out / "report.md").write_text(markdown_table(rows, report["summary"]))
    report["plot"] = str(out / "sync_offsets.png") if plot_offsets(rows, out / "sync_offsets.png") else None
    return report
