"""The synthetic world: deterministic clips whose ground truth matches what is seen and heard."""
import json
import shutil

import numpy as np
import pytest

from soundstage.synthworld import ClipSpec, generate_clip, generate_dataset
from soundstage.synthworld.speech import split_mnemonics
from soundstage.synthworld.visemes import openness_track, viseme
from soundstage.metrics.sync import synthworld_mouth_openness

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt-get install espeak-ng)")


@pytest.fixture(scope="module")
def clip():
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed (apt-get install espeak-ng)")
    return generate_clip(ClipSpec(seed=3, seconds=3.0, width=96, height=96))


def test_visemes_and_mnemonics():
    assert split_mnemonics("b'aUnsI2z") == ["b", "aU", "n", "s", "I", "z"]
    assert viseme("m") == "bilabial" and viseme("a") == "open" and viseme("u:") == "round"
    track = openness_track([("m", 0.0, 0.2), ("a", 0.2, 0.6)], n_frames=20, fps=25)
    assert track[2] == 0.0 and track[10] == 1.0 and track[18] == 0.0


def test_silent_world_is_deterministic():
    a = generate_clip(ClipSpec(seed=5, seconds=1.5, speech=False, width=64, height=64))
    b = generate_clip(ClipSpec(seed=5, seconds=1.5, speech=False, width=64, height=64))
    c = generate_clip(ClipSpec(seed=6, seconds=1.5, speech=False, width=64, height=64))
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.stems["effects"], b.stems["effects"])
    assert not np.array_equal(a.frames, c.frames)


def test_impact_sounds_start_at_contact_times():
    c = generate_clip(ClipSpec(seed=1, seconds=3.0, speech=False, width=64, height=64))
    fx, sr = c.stems["effects"], c.spec.sample_rate
    assert c.truth["impacts"], "a dropped ball must hit the floor within 3 s"
    for hit in c.truth["impacts"]:
        i = int(round(hit["time"] * sr))
        before = np.abs(fx[max(0, i - 400): i - 8]).max(initial=0.0)
        after = np.abs(fx[i: i + 400]).max()
        assert after > 5 * before + 1e-3, hit


@needs_espeak
def test_mouth_follows_speech(clip):
    truth = np.array(clip.truth["mouth_openness"])
    fps = clip.spec.fps
    first_word = clip.truth["words"][0]
    assert truth[: int(first_word[1] * fps) - 1].max() == 0.0  # closed before speech starts
    assert truth.max() > 0.5
    seen = synthworld_mouth_openness(clip.frames)
    assert np.corrcoef(seen, truth)[0, 1] > 0.9  # the drawn mouth is the ground-truth mouth
    # speech energy sits inside the word spans
    sp, sr = clip.stems["speech"], clip.spec.sample_rate
    inside = np.zeros(len(sp), bool)
    for _, a, b in clip.truth["words"]:
        inside[int(a * sr): int(b * sr)] = True
    assert (sp[inside] ** 2).sum() > 0.99 * (sp ** 2).sum()


@needs_espeak
def test_dataset_pairs_and_files(tmp_path):
    m = generate_dataset(tmp_path, 2, seconds=1.5, size=64)
    en, fr = m["clips"]
    assert (en["language"], fr["language"]) == ("en", "fr") and en["speaker"] == fr["speaker"]
    assert en["pair_id"] == fr["pair_id"] and en["transcript"] != fr["transcript"]
    for key in ("video", "silent_video", "mix", "speech", "effects", "music", "background", "reference_voice"):
        assert (tmp_path / en[key]).is_file(), key
    assert json.loads((tmp_path / "manifest.json").read_text())["clips"][0]["id"] == "clip0000"
    from soundstage.media.decode import probe_video

    info = probe_video(str(tmp_path / en["video"]))
    assert abs(info.duration - 1.5) < 0.1 and info.width == 64


@needs_espeak
def test_samples_cover_every_input_the_example_workflows_load(tmp_path):
    from pathlib import Path

    from soundstage.cli import main

    assert main(["synth", "--samples", "--out", str(tmp_path), "--seconds", "1.0", "--size", "64"]) == 0
    loaders = {"LoadVideo", "LoadAudio", "LoadImage", "SoundstageLoadVideo", "SoundstageLoadAudio"}
    wanted = set()
    for wf in (Path(__file__).resolve().parents[1] / "workflows").glob("*.json"):
        for node in json.loads(wf.read_text())["nodes"]:
            if node["type"] in loaders and node.get("widgets_values") and node["widgets_values"][0]:
                wanted.add(node["widgets_values"][0])
    present = {p.name for p in tmp_path.iterdir()}
    assert wanted and wanted <= present, sorted(wanted - present)
    from soundstage.media.decode import probe_video

    assert probe_video(str(tmp_path / "dub_source.mp4")).width == 64
