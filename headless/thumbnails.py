"""`python -m soundstage thumbnails`: the Templates dialog's picture of each example workflow.

A workflow whose models all ship with the pack is run headless on the sample inputs (`synth --samples`),
and its card shows a frame of the video it made and the spectrogram of the audio it made. Any other
workflow gets an honest card: its sample input, what it makes, and the released weights it needs. Title
and description come from the workflow's ``extra.soundstage`` block (what js/templates.js shows).
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

# Workflows that run from a fresh clone (their models are the pack's tiny defaults, or none at all).
# A system whose default is trained later joins with one line here, e.g. "soundtrack_dualdub".
RUNS_AS_SHIPPED = ("soundtrack_mmdit", "video_to_speech", "song_from_lyrics", "soundtrack_dualdub", "t2av_ovi",
                   "i2av_ovi", "audio_to_video_mtv", "synth_mix_mux", "media_me_delivery")

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"
MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".sft", ".th")
SHIPPED_PREFIX = "soundstage-tiny/"
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".opus")
FRAME_AT = 0.4  # fraction of the clip: past the first frames, where the synthetic scenes are still moving


def template_info(workflow: dict) -> dict:
    """Title, description and system of a workflow (its ``extra.soundstage`` block)."""
    info = (workflow.get("extra") or {}).get("soundstage") or {}
    missing = {"title", "description", "system"} - set(info)
    if missing:
        raise ValueError(f"workflow has no extra.soundstage {sorted(missing)}")
    return info


def needed_weights(workflow: dict) -> tuple[list[str], list[str]]:
    """(files to download, files with no public release): model files the loaders name, shipped ones aside;
    a file is downloadable when its node carries a ``properties.models`` entry (its official source)."""
    download, unreleased = [], []
    for node in workflow["nodes"]:
        sources = {m["name"] for m in (node.get("properties") or {}).get("models", [])}
        for value in node.get("widgets_values") or []:
            if isinstance(value, str) and value.endswith(MODEL_SUFFIXES) and not value.startswith(SHIPPED_PREFIX):
                (download if value in sources else unreleased).append(value)
    return list(dict.fromkeys(download)), list(dict.fromkeys(unreleased))


def _files_named(workflow: dict, suffixes: tuple[str, ...]) -> list[str]:
    return [v for n in workflow["nodes"] if n["type"] not in ("Note", "MarkdownNote")
            for v in (n.get("widgets_values") or [])[:1] if isinstance(v, str) and v.lower().endswith(suffixes)]


def read_frame(path: Path) -> np.ndarray:
    """One RGB frame (float 0..1) of a video, at ``FRAME_AT`` of its length, or an image file."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        from PIL import Image

        return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    from ..media.decode import decode_video, probe_video

    info = probe_video(str(path))
    start = FRAME_AT * (info.duration or 0.0)
    return decode_video(str(path), start=start, max_frames=1).frames[0].numpy()


def read_audio(path: Path) -> tuple[np.ndarray, int] | None:
    """A file's first audio stream as a mono wave, or None when it has none."""
    from ..media.audio_io import load_audio, probe_audio

    if not probe_audio(str(path)):
        return None
    wave, rate = load_audio(str(path))
    return wave.float().mean(dim=0).numpy(), rate


def run_outputs(path: Path, input_dir: Path, output_dir: Path) -> list[Path]:
    """Runs a workflow headless; the files its output nodes wrote, in node order."""
    from .runner import Runner

    result = Runner(input_dir=str(input_dir), output_dir=str(output_dir), progress=lambda *a, **k: None).run(str(path))
    files = []
    for ui in result.outputs.values():
        for key in ("images", "video", "audio"):
            for item in ui.get(key) or []:
                if isinstance(item, dict) and item.get("filename"):
                    files.append(output_dir / item.get("subfolder", "") / item["filename"])
    return files


def card_for_output(info: dict, files: list[Path]):
    """The card of a workflow that ran: a frame of its video and the spectrogram of its audio."""
    from ..media.thumbnail import render_card

    video = next((f for f in files if f.suffix.lower() in VIDEO_SUFFIXES), None)
    audio_file = next((f for f in files if f.suffix.lower() in AUDIO_SUFFIXES), None)
    frame = read_frame(video) if video else None
    audio = read_audio(video) if video else None
    if audio is None and audio_file is not None:
        audio = read_audio(audio_file)
    if frame is None and audio is None:
        raise RuntimeError(f"{info['title']}: the run wrote no video or audio ({[f.name for f in files]})")
    return render_card(info["title"], f"{info['system']}: {info['description']}", frame=frame, audio=audio,
                       frame_label="its output" if frame is not None else "",
                       audio_label="spectrogram of its output audio" if audio is not None else "")


def card_for_weights(info: dict, workflow: dict, input_dir: Path):
    """The card of a workflow that needs released weights: its sample input and what it needs."""
    from ..media.thumbnail import render_card

    download, unreleased = needed_weights(workflow)
    pictures = _files_named(workflow, VIDEO_SUFFIXES + IMAGE_SUFFIXES)
    sounds = _files_named(workflow, AUDIO_SUFFIXES)
    frame = read_frame(input_dir / pictures[0]) if pictures else None
    audio = read_audio(input_dir / (sounds or pictures)[0]) if sounds or pictures else None
    needs = []
    if unreleased:
        needs.append(f"No released weights: {', '.join(Path(f).name for f in unreleased)}.")
    if download:
        shown = [Path(f).name for f in download[:3]]
        more = f" and {len(download) - 3} more" if len(download) > 3 else ""
        needs.append(f"Needs released weights: {', '.join(shown)}{more}.")
    caption = f"{info['system']}: {info['description']} " + " ".join(needs)
    return render_card(info["title"], caption, frame=frame, audio=audio,
                       frame_label="sample input (not run here)" if frame is not None else
                       f"{info['system']}: " + ("sound in, see its input below" if audio is not None
                                                else "text in, nothing to show before it runs"),
                       audio_label="sample input audio" if audio is not None else "")


def make_thumbnails(names: list[str] | None = None, out_dir: Path = WORKFLOWS, workflows_dir: Path = WORKFLOWS,
                    log=print) -> dict[str, Path]:
    """Writes ``<name>.jpg`` beside each workflow (all of them, or ``names``); returns the paths."""
    from ..media.thumbnail import save_jpeg
    from ..synthworld.samples import write_workflow_samples

    paths = sorted(workflows_dir.glob("*.json"))
    if names:
        unknown = set(names) - {p.stem for p in paths}
        if unknown:
            raise ValueError(f"no such workflow: {sorted(unknown)}")
        paths = [p for p in paths if p.stem in names]
    written = {}
    with tempfile.TemporaryDirectory() as tmp:
        input_dir = Path(tmp) / "input"
        write_workflow_samples(input_dir)
        for path in paths:
            workflow = json.loads(path.read_text())
            info = template_info(workflow)
            if path.stem in RUNS_AS_SHIPPED:
                card = card_for_output(info, run_outputs(path, input_dir, Path(tmp) / "output" / path.stem))
            else:
                card = card_for_weights(info, workflow, input_dir)
            written[path.stem] = save_jpeg(card, out_dir / f"{path.stem}.jpg")
            log(f"{written[path.stem]} ({'its output' if path.stem in RUNS_AS_SHIPPED else 'needs weights'}, "
                f"{written[path.stem].stat().st_size // 1000} KB)")
    return written
