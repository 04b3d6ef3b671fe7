"""Template thumbnails: the renderer draws the audio it is given, a shipped-model workflow's card comes from its
run, and the committed pictures are each workflow's own (`python -m soundstage thumbnails` redraws them)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from soundstage.headless import thumbnails
from soundstage.media.thumbnail import BACKGROUND, CARD, FRAME_H, MAX_BYTES, SPEC_H, render_card, spectrogram

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((REPO / "workflows").glob("*.json"))


def tone(freq: float, rate: int = 16000, seconds: float = 1.0) -> np.ndarray:
    return np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)


def brightest_row(band: np.ndarray) -> float:
    return float(np.argmax(band.astype(float).sum(axis=(1, 2))))


@pytest.mark.parametrize("low,high", [(500.0, 4000.0), (1000.0, 6000.0)])
def test_spectrogram_puts_a_higher_tone_higher(low, high):
    rows = {}
    for freq in (low, high):
        band = np.asarray(render_card("t", "c", audio=(tone(freq), 16000)))[FRAME_H:FRAME_H + SPEC_H]
        rows[freq] = brightest_row(band)
        expected = (1 - freq / 8000) * SPEC_H  # 16 kHz audio: the band spans 0..8 kHz, low at the bottom
        assert abs(rows[freq] - expected) <= SPEC_H * 0.08, (freq, rows[freq], expected)
    assert rows[high] < rows[low]


def test_card_shows_the_frame_it_is_given():
    frame = np.zeros((90, 160, 3), np.float32)
    frame[..., 1] = 1.0  # green
    card = np.asarray(render_card("t", "c", frame=frame))
    assert tuple(card[FRAME_H // 2, CARD // 2]) == (0, 255, 0)
    silent = np.asarray(render_card("t", "c"))
    assert (silent[FRAME_H:FRAME_H + SPEC_H] == BACKGROUND).all()  # no audio: its band stays dark


def test_a_shipped_workflow_card_is_drawn_from_its_run(tmp_path):
    from soundstage.synthworld.samples import write_workflow_samples

    write_workflow_samples(tmp_path / "input", seconds=1.5, size=64)
    path = REPO / "workflows" / "soundtrack_mmdit.json"
    files = thumbnails.run_outputs(path, tmp_path / "input", tmp_path / "output")
    video = next(f for f in files if f.suffix == ".mp4")
    card = np.asarray(thumbnails.card_for_output(thumbnails.template_info(json.loads(path.read_text())), files))
    wave, rate = thumbnails.read_audio(video)
    below_label = slice(24, SPEC_H)  # the band's label sits in its top-left corner
    assert np.array_equal(card[FRAME_H:FRAME_H + SPEC_H][below_label], spectrogram(wave, rate, CARD, SPEC_H)[below_label])
    # the spectrogram is of the soundtrack the run made, not of its (silent) input
    assert thumbnails.read_audio(tmp_path / "input" / "soundtrack_input.mp4") is None


def test_every_workflow_has_its_own_small_square_thumbnail():
    seen = {}
    for path in WORKFLOWS:
        jpg = path.with_suffix(".jpg")
        assert jpg.is_file(), f"{jpg.name} missing: python -m soundstage thumbnails {path.stem}"
        assert jpg.stat().st_size < MAX_BYTES
        with Image.open(jpg) as img:
            assert img.size == (CARD, CARD), jpg.name
            pixels = np.asarray(img.convert("L").resize((48, 48)), dtype=float)
        for other, seen_pixels in seen.items():
            assert np.abs(pixels - seen_pixels).mean() > 2.0, f"{jpg.name} looks like {other}"
        seen[jpg.name] = pixels


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_every_workflow_has_a_title_and_description(path):
    info = thumbnails.template_info(json.loads(path.read_text()))
    assert info["title"].startswith(info["system"].split(" ")[0]), info
    assert 20 <= len(info["description"]) <= 120 and "\n" not in info["description"]


def test_the_runnable_list_names_workflows_that_need_nothing_to_download():
    for name in thumbnails.RUNS_AS_SHIPPED:
        download, unreleased = thumbnails.needed_weights(json.loads((REPO / "workflows" / f"{name}.json").read_text()))
        assert not download and not unreleased, (name, download, unreleased)
