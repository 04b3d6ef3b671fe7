"""The synthetic world: deterministic clips whose ground truth matches what is seen and heard."""
import json
import shutil

import numpy as np
import pytest

from soundstage.synthworld import ClipSpec, generate_clip, generate_dataset
from soundstage.synthworld.speech import split_mnemonics
from soundstage.synthworld.splits import clip_spec
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


# --- speech timing: "fixed" (every clip so far) and "varied" (drawn per clip, opt-in) ---------------------------

def _fingerprint(clip) -> str:
    """Frames, stems (as 16-bit samples) and truth of a clip, hashed."""
    import hashlib

    h = hashlib.sha256(np.ascontiguousarray(clip.frames).tobytes())
    for stem in ("speech", "effects", "music"):
        h.update(np.round(clip.stems[stem].astype(np.float64) * 32767).astype(np.int32).tobytes())
    h.update(json.dumps(clip.truth, sort_keys=True).encode())
    return h.hexdigest()[:16]


@needs_espeak
@pytest.mark.parametrize("make, fingerprint", [
    # computed before speech_timing existed (commit e64ffba): every shipped default's clips are these clips
    (lambda: clip_spec("train", 5, seconds=1.5, size=32), "06fa3daf39786f7b"),
    (lambda: ClipSpec(seed=3, seconds=2.0, width=32, height=32), "6241839406b249ae"),
])
def test_default_clips_are_unchanged_by_the_speech_timing_option(make, fingerprint):
    import dataclasses

    spec = make()
    assert spec.speech_timing == "fixed"
    clip = generate_clip(spec)
    explicit = generate_clip(dataclasses.replace(spec, speech_timing="fixed"))
    assert np.array_equal(clip.frames, explicit.frames) and clip.truth == explicit.truth
    assert all(np.array_equal(clip.stems[k], explicit.stems[k]) for k in clip.stems)
    assert _fingerprint(clip) == fingerprint


def test_varied_timing_draws_within_its_ranges_and_keeps_the_sentence_inside_the_clip():
    from soundstage.synthworld.speech import END_MARGIN_S, VARIED_GAP_S, VARIED_START_S, varied_timing

    words = [0.3] * 6
    roomy = [varied_timing(np.random.default_rng(s), words, 6.0) for s in range(20)]
    for start, gaps in roomy:  # room for any draw: nothing is scaled
        assert VARIED_START_S[0] <= start <= VARIED_START_S[1] and len(gaps) == 5
        assert all(VARIED_GAP_S[0] <= g <= VARIED_GAP_S[1] for g in gaps)
    assert np.ptp([s for s, _ in roomy]) > 0.5 and np.ptp([g for _, gs in roomy for g in gs]) > 0.2
    for s in range(20):  # tight: scaled down to end END_MARGIN_S before the clip's end, never below the minima
        start, gaps = varied_timing(np.random.default_rng(s), words, 2.5)
        assert start >= VARIED_START_S[0] and min(gaps) >= VARIED_GAP_S[0]
        assert start + sum(words) + sum(gaps) <= 2.5 - END_MARGIN_S + 1e-9
    start, gaps = varied_timing(np.random.default_rng(0), words, 1.5)  # too long even at the minima
    assert start == VARIED_START_S[0] and gaps == [VARIED_GAP_S[0]] * 5
    assert varied_timing(np.random.default_rng(0), words, 6.0) == roomy[0]  # the clip's own seed decides


@needs_espeak
def test_varied_timing_moves_the_speech_and_the_truth_follows_it():
    import dataclasses

    from soundstage.synthworld.speech import END_MARGIN_S, VARIED_GAP_S

    fixed_spec = clip_spec("train", 2, seconds=5.0, size=48)
    clips = [generate_clip(clip_spec("train", i, seconds=5.0, size=48, speech_timing="varied")) for i in (2, 6)]
    fixed = generate_clip(fixed_spec)
    varied = clips[0]
    assert dataclasses.replace(varied.spec, speech_timing="fixed") == fixed_spec
    # the same sentence, speaker and scene: only the speech (and the mouth drawing it) moved
    assert [w for w, _, _ in varied.truth["words"]] == [w for w, _, _ in fixed.truth["words"]]
    assert np.array_equal(varied.stems["effects"], fixed.stems["effects"])
    assert np.array_equal(varied.stems["music"], fixed.stems["music"])
    assert varied.truth["impacts"] == fixed.truth["impacts"] and varied.truth["beeps"] == fixed.truth["beeps"]
    assert not np.array_equal(varied.stems["speech"], fixed.stems["speech"])

    starts = [c.truth["words"][0][1] for c in clips] + [fixed.truth["words"][0][1]]
    assert len({round(s, 3) for s in starts}) == 3  # each clip starts speaking at its own time
    gaps = [[b[1] - a[2] for a, b in zip(c.truth["words"], c.truth["words"][1:])] for c in clips]
    assert np.ptp(gaps[0]) > 0.02 and gaps[0] != gaps[1]  # pauses differ between words and between clips
    for c, g in zip(clips, gaps):
        assert min(g) >= VARIED_GAP_S[0] - 1e-4
        assert c.truth["words"][-1][2] <= c.spec.seconds - END_MARGIN_S + 1e-4
        fps, sr = c.spec.fps, c.spec.sample_rate
        # the mouth moves exactly within the word spans (frames whose centre the phoneme times cover)
        spans = np.zeros(len(c.frames), bool)
        for _, a, b in c.truth["words"]:
            spans[int(a * fps + 0.5): int(b * fps + 0.5)] = True
        openness = np.array(c.truth["mouth_openness"])
        assert openness[~spans].max() == 0.0 and openness[spans].mean() > 0.3
        assert all(openness[int(a * fps + 0.5): int(b * fps + 0.5)].max() > 0 for _, a, b in c.truth["words"])
        assert np.corrcoef(synthworld_mouth_openness(c.frames), openness)[0, 1] > 0.9  # as drawn
        # the speech's energy sits inside the word spans
        sp = c.stems["speech"]
        inside = np.zeros(len(sp), bool)
        for _, a, b in c.truth["words"]:
            inside[int(a * sr): int(b * sr)] = True
        assert (sp[inside] ** 2).sum() > 0.99 * (sp ** 2).sum()
        phones = c.truth["phonemes"]
        assert phones[0][1] == c.truth["words"][0][1] and phones[-1][2] == c.truth["words"][-1][2]
    with pytest.raises(ValueError, match="speech_timing"):
        generate_clip(ClipSpec(seconds=0.5, width=32, height=32, speech=False, speech_timing="random"))


@needs_espeak
def test_remembered_words_are_espeaks_own_and_callers_get_their_own_copy():
    from soundstage.synthworld import speech

    speech._espeak_word.cache_clear()
    first = speech.synth_words("the red ball", "en", "spk1")
    assert speech._espeak_word.cache_info().misses == 3
    first[0].wave[:] = 0.0  # a caller that edits its wave in place
    first[0].symbols.append("x")
    again = speech.synth_words("the red ball", "en", "spk1")
    assert speech._espeak_word.cache_info().hits == 3
    fresh = speech._espeak_word.__wrapped__("the", "en", "spk1")  # espeak-ng run anew
    assert np.array_equal(again[0].wave, fresh) and np.abs(fresh).max() > 0.01
    assert again[0].symbols == speech.phonemes_of("the", "en") != first[0].symbols
