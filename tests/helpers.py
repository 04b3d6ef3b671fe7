"""Test scaffolding shared by the node tests: tiny random weights, temporary model folders, runner folders."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from soundstage.compat import folder_paths
from soundstage.nodes.model_folders import register_model_folders
from soundstage.testing.codecs import (BIGVGAN_TINY, MEL_VAE_16K, bigvgan_generator_state_dict,  # noqa: F401
                                       mel_vae_state_dict, write_codec_files)


def randomise(module: torch.nn.Module, seed: int, std: float = 0.1) -> torch.nn.Module:
    """Every parameter drawn from N(0, std) (default inits make outputs too uniform to test)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, std)
    return module


@contextmanager
def temporary_models_dir(root: Path, *subfolders: str) -> Iterator[Path]:
    """ComfyUI's models folder pointed at ``root`` (with ``subfolders`` made), restored afterwards."""
    old = folder_paths.models_dir
    folder_paths.set_models_directory(str(root))
    register_model_folders()
    for sub in subfolders:
        (root / sub).mkdir(parents=True, exist_ok=True)
    try:
        yield root
    finally:
        folder_paths.set_models_directory(old)


def load_benchmark(name: str):
    """A script of ``benchmarks/`` imported as a module (the folder is not a package of the pack)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def runner_folders(tmp_path: Path) -> tuple[Path, Path]:
    """Fresh input and output folders for one headless run."""
    inp, out = tmp_path / "input", tmp_path / "output"
    inp.mkdir()
    out.mkdir()
    return inp, out


NTSC_30 = "30000/1001"  # 29.97 fps, as containers store it


def video_and_audio(path) -> tuple[np.ndarray, np.ndarray, int]:
    """A media file's RGB frames [T, H, W, 3], its mono audio and the audio's rate (PyAV, every frame)."""
    import av

    with av.open(str(path)) as c:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    with av.open(str(path)) as c:
        rate = c.streams.audio[0].rate
        wave = np.concatenate([f.to_ndarray().mean(0) for f in c.decode(audio=0)]).astype(np.float32)
    return frames, wave, rate


def probe_av(path: Path) -> dict:
    """Frame rate, frame count and audio/video durations of a written clip (decoded, not from headers)."""
    import av

    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        rate = vs.average_rate
        frames = sum(1 for _ in c.decode(video=0))
        out = {"rate": rate, "frames": frames, "video_s": frames / float(rate), "audio_s": None, "audio_frame_s": None}
        if c.streams.audio:
            c.seek(0)
            sr = c.streams.audio[0].rate
            samples, frame_len = 0, 0
            for f in c.decode(audio=0):
                samples += f.samples
                frame_len = max(frame_len, f.samples)
            out.update(audio_s=samples / sr, audio_frame_s=frame_len / sr)
    return out


def assert_ntsc_and_in_sync(path: Path, expect_frames: int | None = None) -> dict:
    """The clip plays at 29.97 fps (not 29 or 30) and its audio lasts as long as its video, within one audio frame."""
    from fractions import Fraction

    info = probe_av(path)
    assert abs(float(info["rate"]) - float(Fraction(NTSC_30))) < 1e-3, f"{path.name}: {info['rate']} fps"
    if expect_frames is not None:
        assert info["frames"] == expect_frames, info
    assert info["audio_s"] is not None, f"{path.name} has no audio"
    assert abs(info["audio_s"] - info["video_s"]) <= info["audio_frame_s"], info
    return info


@contextmanager
def installed_smoke_default(system: str, smoke_dir: Path, tmp_path: Path, monkeypatch, *subfolders: str) -> Iterator[dict]:
    """A smoke run's default installed into a temporary defaults folder (the pack's own stays aside), with a
    temporary models folder holding ``subfolders``; yields the run's train report. The defaults' search paths are
    taken out of ComfyUI's folder table afterwards."""
    import json

    from soundstage import defaults as pack_defaults
    from soundstage.training.defaults import recipe
    from soundstage.training.defaults.cli import install

    root = tmp_path / "defaults"
    monkeypatch.setattr(pack_defaults, "DEFAULTS_DIR", root)
    report = json.loads((smoke_dir / "train_report.json").read_text())
    written = install(system, smoke_dir / "weights", report)
    parts = recipe(system)
    assert len(written) == len(parts.files) + 2 and set(pack_defaults.search_paths(root)) == set(parts.folders.values())
    try:
        with temporary_models_dir(tmp_path / "models", *subfolders):
            yield report
    finally:
        for _, (paths, _) in folder_paths.folder_names_and_paths.items():
            paths[:] = [p for p in paths if not p.startswith(str(root))]


def shipped_workflow(system: str, name: str) -> tuple[Path, dict, dict]:
    """(path, widgets by node type, card) of the example workflow ``name`` that runs on ``system``'s tiny default;
    skips when that default is not installed in defaults/."""
    import json

    import pytest

    from soundstage import defaults as pack_defaults
    from soundstage.training.defaults.cli import _installed

    if _installed(system) is None:
        pytest.skip(f"the {system} default is not shipped in defaults/ (train-defaults {system} --install)")
    path = pack_defaults.DEFAULTS_DIR.parent / "workflows" / f"{name}.json"
    widgets = {n["type"]: n.get("widgets_values") for n in json.loads(path.read_text())["nodes"]}
    return path, widgets, json.loads(pack_defaults.card_path(system).with_suffix(".json").read_text())


def run_as_shipped(workflow: Path, tmp_path: Path, suffix: str = ".mp4") -> tuple[float, float]:
    """`synth --samples`, then ``workflow`` with no model files of the user's own (the shipped defaults): the
    seconds and the peak of the audio of the one ``suffix`` file it saves (a video, or an audio file)."""
    import av

    from soundstage.headless.runner import Runner
    from soundstage.synthworld.samples import write_workflow_samples

    inp, out, models = tmp_path / "input", tmp_path / "output", tmp_path / "models"
    write_workflow_samples(inp)
    models.mkdir()
    Runner(input_dir=inp, output_dir=out, models_dir=models).run(workflow)
    files = sorted(out.rglob(f"*{suffix}"))
    assert len(files) == 1
    with av.open(str(files[0])) as c:
        assert len(c.streams.audio) >= 1 and (suffix != ".mp4" or c.streams.video)
        rate = c.streams.audio[0].rate
        frames = list(c.decode(audio=0))
    return sum(f.samples for f in frames) / rate, max(float(np.abs(f.to_ndarray()).max()) for f in frames)
