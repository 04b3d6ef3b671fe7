"""Inputs longer than a model's window: MMDiT windows keep timing exact and leave no audible seam."""
from __future__ import annotations

from fractions import Fraction

import pytest
import torch

from soundstage.models.audiogen_omni.mmdit import SYNC_TOKENS_PER_SEGMENT
from soundstage.models.audiogen_omni.preprocess import sync_seq_len
from soundstage.models.common.frame_rate import exact_rate
from soundstage.pipelines import audiogen_omni
from soundstage.testing.audiogen_omni import tiny_mmdit

from helpers import load_benchmark


def _bench():
    return load_benchmark("bench_long_inputs")


@pytest.fixture(scope="module")
def sixty_seconds():
    bench = _bench()
    return bench.measure(60.0, 8.0, 1.0, seed=0, model_steps=1)


def test_impact_onsets_stay_within_a_frame_in_every_window(sixty_seconds):
    r = sixty_seconds
    assert r["windows"] >= 8 and r["events"] >= 40
    for w in r["per_window"]:
        assert w["events"] > 0
        assert w["max_ms"] <= r["video_frame_ms"], w  # within one 25 fps frame, first window to last
        assert w["shift_vs_one_pass_ms"] == 0.0, w  # the windowing itself moves no onset


@pytest.mark.parametrize("report", ["oracle_seams", "model_latent_seams"])
def test_no_seam_jumps_more_than_the_inside_of_windows(sixty_seconds, report):
    for name in ("envelope", "spectrum"):
        s = sixty_seconds[report][name]
        assert s["border_max"] <= s["inside_max"], (report, name, s)
        assert s["border_mean"] <= 1.5 * s["inside_p95"], (report, name, s)


def test_windows_slice_the_conditioning_on_the_sync_grid():
    net = tiny_mmdit(0, sample_rate=16000, samples_per_latent=512)
    seconds = 20.0
    sync = torch.randn(1, sync_seq_len(seconds), net.config.sync_dim)
    clip = torch.randn(1, int(seconds * 8), net.config.clip_dim)
    ids = torch.arange(100)
    windows = audiogen_omni.mmdit_windows(net, seconds, 6.4, 0.64, clip, sync, ids, None)
    n = net.latent_len_for(seconds)
    assert windows[0].latent_start == 0 and windows[-1].latent_start + windows[-1].latent_len >= n
    for w in windows:
        seg = Fraction(w.start_s).limit_denominator(1000) / Fraction(8, 25)
        assert seg.denominator == 1  # starts on whole Synchformer strides
        k = int(seg) * SYNC_TOKENS_PER_SEGMENT
        assert torch.equal(w.sync, sync[:, k:k + w.sync.shape[1]])
        assert w.latent_start == round(w.start_s * 31.25)  # exact at 16 kHz: 10 latent frames per stride
        assert torch.equal(w.clip[:, 0], clip[:, round(w.start_s * 8)])
        assert w.duration_s <= 6.4 + 1e-9
    assert torch.equal(torch.cat([w.lyrics_ids for w in windows]).unique(), ids)  # the whole transcript is used


def test_one_window_is_the_one_pass_result_and_longer_ones_cover_exactly():
    net = tiny_mmdit(1)
    text = {"features": torch.randn(1, 6, net.config.text_dim), "mask": None, "negative": None,
            "negative_mask": None}
    one, _ = audiogen_omni.generate_latent(net, duration=3.0, steps=1, text=text, seed=4, window_seconds=0)
    same, _ = audiogen_omni.generate_latent(net, duration=3.0, steps=1, text=text, seed=4, window_seconds=8.0)
    assert torch.equal(one, same)
    # 29.97 fps video of 61.3 s: the windows produce exactly the one-pass latent length for its duration.
    rate = exact_rate(29.97)
    frames = round(61.3 * rate)
    seconds = float(frames / rate)
    long, out_seconds = audiogen_omni.generate_latent(net, duration=seconds, steps=1, text=text, seed=4,
                                                      window_seconds=8.0, overlap_seconds=0.96)
    assert out_seconds == seconds and long.shape[-1] == net.latent_len_for(seconds)
    assert bool(torch.isfinite(long).all())


def test_bad_window_settings_name_the_inputs():
    net = tiny_mmdit(0)
    with pytest.raises(ValueError, match="window_seconds"):
        audiogen_omni.generate_latent(net, duration=20.0, steps=1, window_seconds=1.0, overlap_seconds=1.0)


# ---- DualDub: token streams continued across windows that follow pauses -----------------------------
def _dualdub():
    from soundstage.testing.dualdub import tiny_codec, tiny_dualdub

    codec = tiny_codec()
    model, tok = tiny_dualdub(codec)
    return codec, model, tok


def test_dualdub_prefix_is_context_on_both_decoding_paths():
    from soundstage.models.dualdub.sampler import SamplingOptions, generate

    _, model, tok = _dualdub()
    cfg = model.config
    cond = model.conditions(text_ids=torch.tensor([3, 4, 5]))
    prefix = torch.randint(0, cfg.codebook_size, (1, 2, 6), generator=torch.Generator().manual_seed(0))
    opts = SamplingOptions(temperature=0.0, min_steps=8)
    cached = generate(model, cond, 8, task="v2st", options=opts, prefix=prefix)
    full = generate(model, cond, 8, task="v2st", options=opts, prefix=prefix, use_cache=False)
    assert torch.equal(cached.audio, full.audio) and torch.equal(cached.speech, full.speech)
    assert cached.audio.shape[-1] == 8  # the context is not returned
    other = generate(model, cond, 8, task="v2st", options=opts, prefix=(prefix + 1) % cfg.codebook_size)
    assert not torch.equal(other.speech, cached.speech)  # the continuation depends on the context


def test_dualdub_windows_follow_pauses_keep_whole_words_and_exact_length():
    from soundstage.models.dualdub.sampler import SamplingOptions
    from soundstage.pipelines import dualdub

    codec, model, tok = _dualdub()
    rate = model.config.token_rate
    seconds = 2.5
    # A guide track with speech everywhere but a pause at 0.8 s (first nominal border: 1.0 s).
    sr = 8000
    wave = 0.5 * torch.sin(torch.arange(int(seconds * sr)) * 0.3)
    wave[int(0.78 * sr): int(0.84 * sr)] = 0
    guide = {"waveform": wave.view(1, 1, -1), "sample_rate": sr}
    text = dualdub.text_ids(tok, "look out the train is coming hello there", model.config.text_vocab_size)
    video = {"features": torch.randn(12, model.config.video_dim), "times": torch.arange(12) * 0.2, "seconds": seconds}
    tokens = dualdub.generate_tokens(model, tok, text, task="v2st", duration=seconds, video=video,
                                     options=SamplingOptions(temperature=0.0), window_seconds=1.0,
                                     context_seconds=0.2, pause_guide=guide)
    total = dualdub.steps_for_duration(seconds, rate)
    assert tokens["audio"].shape[-1] == total and tokens["speech_length"] == total
    starts = [a for a, _ in tokens["windows_s"]]
    assert 0.77 <= starts[1] <= 0.85  # the first border moved back to the pause
    assert all(b - a <= 1.0 + 1e-9 for a, b in tokens["windows_s"])
    assert bool((tokens["speech"] < model.config.codebook_size).all())  # no PAD/EOS inside the clip
    background, speech = dualdub.decode_tokens(codec, tokens)
    assert speech["waveform"].shape[-1] == round(seconds * codec.sample_rate)
    lines = dualdub.words_per_window(text["text"], [type("W", (), {"start": round(a * rate), "end": round(b * rate)})
                                                     for a, b in tokens["windows_s"]], None, total)
    assert " ".join(w for w in lines if w) == text["text"]  # every word once, none cut


def test_the_shipped_default_keeps_time_over_a_minute_of_windows():
    """The trained AudioGen-Omni default soundtracks a 60 s clip of the world in windows of its trained length:
    onsets stay within a video frame overall, later windows are no worse than earlier ones (no drift), and
    window borders jump no more than the inside of windows."""
    bench = _bench()
    try:
        r = bench.measure_default(60.0)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    assert r["windows"] >= 30 and r["events"] >= 30
    assert r["median_ms"] <= r["video_frame_ms"], r["median_ms"]
    assert r["impacts"]["median_ms"] <= r["video_frame_ms"] and r["impacts"]["max_ms"] < 200, r["impacts"]
    assert r["median_ms_second_half"] <= r["median_ms_first_half"] + 10, r  # no drift
    assert r["miss_rate"] <= 0.2, r["miss_rate"]
    for name in ("envelope", "spectrum"):
        assert r["seams"][name]["border_max"] <= r["seams"][name]["inside_max"], (name, r["seams"][name])
