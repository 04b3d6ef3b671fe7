"""The synthetic world's sentences, captions and seed ranges that the tiny defaults train and evaluate on."""
import dataclasses
import re

import numpy as np
import pytest

from soundstage.synthworld import generate_clip, sentences
from soundstage.synthworld.splits import SEED_RANGES, clip_spec, split_of_seed


def test_held_out_sentences_are_disjoint_from_training_ones_in_every_language():
    train, held = sentences.sentence_ids("train"), sentences.sentence_ids("heldout")
    assert len(train) >= 300 and len(held) >= 100 and not set(train) & set(held)
    assert sorted(train + held) == list(range(sentences.count()))
    for lang in sentences.LANGUAGES:
        seen = {sentences.sentence(lang, i) for i in train}
        unseen = {sentences.sentence(lang, i) for i in held}
        assert not seen & unseen, lang
        assert len(unseen) == len(held)  # every held-out id is a different sentence
        # held-out lines use only words that training lines use: new combinations, known vocabulary
        assert {w for s in unseen for w in s.split()} <= {w for s in seen for w in s.split()}


def test_the_same_sentence_id_is_a_dubbing_pair():
    for i in (0, 9, 1234):
        en, fr, de = (sentences.sentence(lang, i) for lang in ("en", "fr", "de"))
        assert en.split()[0] == fr.split()[0] == de.split()[0]  # the same name says it
        assert len({en, fr, de}) == 3
    with pytest.raises(ValueError, match="language"):
        sentences.sentence("it", 0)


def test_seed_ranges_are_disjoint_and_clip_specs_deterministic():
    assert not set(SEED_RANGES["train"]) & set(SEED_RANGES["heldout"])
    assert set(SEED_RANGES["ci"]) <= set(SEED_RANGES["heldout"])
    a, b = clip_spec("heldout", 5), clip_spec("heldout", 5)
    assert a == b and split_of_seed(a.seed) == "heldout" and split_of_seed(clip_spec("train", 5).seed) == "train"
    assert sentences.is_held_out(a.sentence) and not sentences.is_held_out(clip_spec("train", 5).sentence)
    fr = clip_spec("heldout", 5, language="fr")
    assert (fr.seed, fr.sentence, fr.speaker) == (a.seed, a.sentence, a.speaker) and fr.language == "fr"
    with pytest.raises(ValueError, match="out of range"):
        clip_spec("ci", 2)


def test_v2a_clips_are_silent_except_balls_and_beeps_and_deterministic():
    s = clip_spec("train", 3, task="v2a", seconds=1.5, size=48)
    x, y = generate_clip(s), generate_clip(s)
    assert np.array_equal(x.frames, y.frames) and np.array_equal(x.stems["effects"], y.stems["effects"])
    assert not x.stems["speech"].any() and x.truth["transcript"] == ""


def test_split_clips_start_their_events_at_different_times():
    # A fixed start would let another clip's sound pass as in sync (the mismatched baseline of eval-defaults).
    firsts, blinks = [], []
    for index in range(8):
        c = generate_clip(clip_spec("train", index, task="v2a", seconds=3.0, size=48))
        firsts.append(min(e["time"] for e in c.truth["impacts"]))
        blinks.append(c.truth["beeps"][0]["time"])
    assert np.ptp(firsts) > 0.4 and np.ptp(blinks) > 0.4
    plain = generate_clip(dataclasses.replace(clip_spec("train", 0, task="v2a", seconds=3.0, size=48), event_delays=False))
    assert min(e["time"] for e in plain.truth["impacts"]) < 0.75  # dropped at t = 0: at most ~0.73 s of fall


def test_a_held_ball_hangs_still_then_falls_from_rest():
    from soundstage.synthworld.scene import GRAVITY, Ball, ball_track

    times = np.arange(75) / 25
    ball = Ball(x0=0.6, vx=0.1, drop_height=0.5, radius=0.05, colour=(1, 2, 3), hold=0.6)
    h, x, contacts = ball_track(ball, times)
    before = times < 0.6
    assert np.all(h[before] == 0.5) and np.all(x[before] == 0.6) and h[~before][1] < 0.5 and x[-1] != 0.6
    assert contacts[0] == pytest.approx(0.6 + np.sqrt(2 * 0.5 / GRAVITY))


def test_caption_matches_the_scene():
    for index in (0, 1):
        c = generate_clip(clip_spec("heldout", index, task="v2a", seconds=2.0, size=48))
        cap = c.truth["caption"]
        n = c.spec.n_balls
        assert ("bounces" in cap) == (n == 1) and bool(re.search(r"\bbounce\b", cap)) == (n > 1)
        assert cap.count("ball") == n
        assert ("a lamp blinks" in cap) == bool(c.truth["beeps"])
        assert "says" not in cap  # a silent face is not described as talking
        assert ("red" in cap) and (("green" in cap) == (n > 1))


def test_caption_quotes_the_transcript_and_the_speaker():
    import shutil

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed (apt-get install espeak-ng)")
    s = clip_spec("train", 1, language="de", seconds=4.0, size=48)
    c = generate_clip(s)
    cap = c.truth["caption"]
    assert f'"{sentences.sentence("de", s.sentence)}"' in cap and "in German" in cap
    assert ("a woman" in cap) == (s.speaker in ("spk1", "spk3"))


def test_synth_command_writes_clips_of_a_fixed_split(tmp_path):
    import json

    from soundstage.cli import main

    assert main(["synth", "--out", str(tmp_path), "--n", "3", "--split", "heldout", "--task", "v2a", "--seconds", "1.0",
                 "--size", "48", "--languages", "en", "fr", "de"]) == 0
    clips = json.loads((tmp_path / "manifest.json").read_text())["clips"]
    assert [c["language"] for c in clips] == ["en", "fr", "de"] and {c["split"] for c in clips} == {"heldout"}
    assert len({c["spec"]["seed"] for c in clips}) == 1 and clips[0]["spec"]["seed"] in SEED_RANGES["heldout"]
    assert clips[0]["caption"] == clips[2]["caption"] and "ball" in clips[0]["caption"]
