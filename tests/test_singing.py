"""Sung words from espeak-ng (synthworld/singing.py): each world voice holds the note it is asked for."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from soundstage.metrics.pitch import semitones, track_f0
from soundstage.synthworld.speech import ESPEAK_RATE, SPEAKERS

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                reason="espeak-ng not installed (apt-get install espeak-ng)")
WORDS = ("anna", "carries", "the", "yellow", "lamp", "morning")


def test_every_voice_has_a_rising_range_of_an_octave():
    from soundstage.synthworld.singing import pitch_curve

    for speaker, (variant, _, _) in SPEAKERS.items():
        params, hz = pitch_curve(variant)
        assert list(params) == sorted(params) and all(b > a for a, b in zip(hz, hz[1:])), (speaker, params, hz)
        assert hz[-1] / hz[0] >= 2.0, (speaker, hz)
    from soundstage.synthworld.singing import sung_range

    assert all(sung_range(s)[1] / sung_range(s)[0] == pytest.approx(2.0) for s in SPEAKERS)


@pytest.mark.parametrize("speaker", sorted(SPEAKERS))
def test_sung_words_hold_their_note(speaker):
    from soundstage.synthworld.singing import sing_word, sung_range

    lo, hi = sung_range(speaker)
    notes = np.geomspace(lo, hi, 3)
    deviations, medians = [], []
    for hz in notes:
        f0s = []
        for word in WORDS:
            f0 = track_f0(sing_word(word, "en", speaker, hz), ESPEAK_RATE)[1]
            f0s.append(f0[np.isfinite(f0)])
        f0 = np.concatenate(f0s)
        deviations.append(np.abs(semitones(f0, hz)))
        medians.append(np.median(f0))
    deviations = np.concatenate(deviations)
    assert np.mean(deviations <= 1.0) >= 0.9, (speaker, np.percentile(deviations, [50, 90]))
    # the notes are told apart: each median within 0.75 semitones of its own note (the male voices sing their
    # lowest notes up to 0.65 flat), a fifth and more from the next
    assert np.abs(semitones(np.array(medians), notes)).max() < 0.75, (speaker, medians, notes)


def test_a_note_outside_the_voice_is_refused():
    from soundstage.synthworld.singing import pitch_setting, sung_range

    lo, hi = sung_range("spk1")
    with pytest.raises(ValueError, match="spk1 sings"):
        pitch_setting("spk1", hi * 1.5)
    assert pitch_setting("spk1", lo) < pitch_setting("spk1", hi)


def test_sung_words_are_copies_of_the_cache():
    from soundstage.synthworld.singing import sing_word, sung_range

    hz = sung_range("spk0")[1]
    first = sing_word("lamp", "en", "spk0", hz)
    first[:] = 0
    assert np.abs(sing_word("lamp", "en", "spk0", hz)).max() > 0.05


def _sung_and_spoken(index: int = 3):
    import dataclasses

    from soundstage.synthworld import generate_clip
    from soundstage.synthworld.splits import clip_spec

    spoken = clip_spec("train", index, seconds=4.0, size=64)
    sung = clip_spec("train", index, seconds=4.0, size=64, voice="sing")
    assert sung == dataclasses.replace(spoken, voice="sing")  # the split's clip, sung
    return generate_clip(sung), generate_clip(spoken)


def test_a_song_clip_sings_its_sentence_on_the_beats_of_its_named_tune():
    from soundstage.metrics.pitch import Note, melody_accuracy
    from soundstage.synthworld.song import SONG_START_BEAT, TUNES, beat_seconds, tonic

    sung, spoken = _sung_and_spoken()
    truth = sung.truth
    assert truth["tune"] in TUNES and f"sings to the {truth['tune']} tune" in truth["caption"]
    assert truth["transcript"] == spoken.truth["transcript"] and len(truth["notes"]) == len(truth["transcript"].split())
    beat, steps = beat_seconds(), TUNES[truth["tune"]]
    beats = [n["start"] / beat for n in truth["notes"]]
    assert np.allclose(beats, np.round(beats), atol=0.01) and round(beats[0]) == SONG_START_BEAT  # words on beats
    for n, b in zip(truth["notes"], beats):  # each word held on its beat's step of the tune
        assert n["hz"] == pytest.approx(tonic(sung.spec.speaker) * 2 ** (steps[int(round(b)) - SONG_START_BEAT] / 12),
                                        rel=1e-4)
    assert truth["notes"][-1]["end"] < sung.spec.seconds
    # the sung stem follows its melody; the spoken clip's speech does not
    notes = [Note(n["start"], n["end"], n["hz"]) for n in truth["notes"]]
    sung_acc = melody_accuracy(*track_f0(sung.stems["speech"], 16000), notes)
    spoken_acc = melody_accuracy(*track_f0(spoken.stems["speech"], 16000), notes)
    assert sung_acc["voiced_share"] > 0.4 and sung_acc["within_share"] >= 0.9, sung_acc
    assert spoken_acc["within_share"] < 0.5, spoken_acc
    # the mouth sings what is heard; the balls, the lamp and their sounds are the spoken clip's
    assert truth["impacts"] == spoken.truth["impacts"] and truth["beeps"] == spoken.truth["beeps"]
    assert np.array_equal(sung.stems["effects"], spoken.stems["effects"])
    assert max(truth["mouth_openness"]) > 0.5 and truth["mouth_openness"] != spoken.truth["mouth_openness"]
    assert not np.allclose(sung.stems["music"], spoken.stems["music"])  # the tune's chords, not the drawn music


def test_a_song_keeps_its_own_timing():
    from soundstage.synthworld import ClipSpec, generate_clip

    with pytest.raises(ValueError, match="a song has its own timing"):
        generate_clip(ClipSpec(voice="sing", speech_timing="varied", width=64, height=64))
    with pytest.raises(ValueError, match="voice must be one of"):
        generate_clip(ClipSpec(voice="hum", width=64, height=64))
