"""The media library (media/): decode windows and VFR resampling, audio I/O, fit, loudness, ducking, mux, save."""
from __future__ import annotations

import math
import wave as wave_module

import av
import numpy as np
import pytest
import torch

from media_factory import (
    frame_index_from_rgb, make_audio, make_corrupt, make_video, speech_gate, synth_audio, video_frame_times,
)
from soundstage.media import MediaError
from soundstage.media import decode as decode_mod
from soundstage.media.audio_io import convert_channels, load_audio, probe_audio
from soundstage.media.decode import decode_video, iter_frames, probe_video, timeline_indices
from soundstage.media.ducking import duck
from soundstage.media.fit import FIT_MODES, fit_audio
from soundstage.media.loudness import limit_true_peak, true_peak_db
from soundstage.media.mix import Track, mix_tracks
from soundstage.media.mux import AudioTrack, mux
from soundstage.media.paths import resolve_inside
from soundstage.media.resize import plan_resize
from soundstage.media.save_audio import AUDIO_FORMATS, audio_extension, save_audio
from soundstage.media.windows import sliding_mean, sliding_min


def indices(decoded) -> list[int]:
    return [frame_index_from_rgb(f.numpy()) for f in decoded.frames]


def dominant_hz(wave: torch.Tensor, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave[0].numpy()))
    return float(np.argmax(spectrum) * rate / wave.shape[-1])


# ----------------------------------------------------------------------------- video decoding
def test_decode_native_frames_in_order(tmp_path):
    path = make_video(tmp_path / "a.mp4", seconds=1.0, fps=24, size=(64, 48))
    decoded = decode_video(path)
    assert decoded.frames.shape == (24, 48, 64, 3)
    assert decoded.frames.dtype == torch.float32 and 0.0 <= float(decoded.frames.min()) <= float(decoded.frames.max()) <= 1.0
    assert indices(decoded) == [i % 20 for i in range(24)]
    assert decoded.fps == pytest.approx(24.0)


def test_window_seeks_and_stops_early(tmp_path, monkeypatch):
    fps, gop = 25, 10
    path = make_video(tmp_path / "long.mp4", seconds=8.0, fps=fps, size=(32, 32), gop=gop)
    seen = []
    original = decode_mod._source_frames

    def counting(*args, **kwargs):
        for item in original(*args, **kwargs):
            seen.append(item[0])
            yield item

    monkeypatch.setattr(decode_mod, "_source_frames", counting)
    decoded = decode_video(path, start=6.0, duration=0.4)
    assert decoded.frames.shape[0] == 10
    assert indices(decoded) == [(150 + i) % 20 for i in range(10)]
    assert decoded.times[0] == pytest.approx(0.0, abs=1e-6)
    # Seeking lands on the keyframe before 6 s and decoding stops right after 6.4 s.
    assert min(seen) >= 6.0 - gop / fps - 1e-6
    assert max(seen) <= 6.4 + 1.5 / fps
    assert len(seen) <= 10 + gop + 2


def test_max_frames_and_stride(tmp_path):
    path = make_video(tmp_path / "a.mp4", seconds=1.0, fps=20, size=(32, 32))
    decoded = decode_video(path, max_frames=4, stride=3)
    assert indices(decoded) == [0, 3, 6, 9]
    assert decoded.fps == pytest.approx(20 / 3)


@pytest.mark.parametrize("vfr", [False, True])
def test_exact_fps_resampling_sample_and_hold(tmp_path, vfr):
    seconds, fps, target = 1.0, 24, 10.0
    path = make_video(tmp_path / "v.mp4", seconds=seconds, fps=fps, size=(32, 32), vfr=vfr)
    times = video_frame_times(seconds, fps, vfr)
    decoded = decode_video(path, fps=target)
    expected = [max(i for i, t in enumerate(times) if t <= k / target + 1e-4) % 20 for k in range(10)]
    assert indices(decoded) == expected
    assert decoded.times == pytest.approx([k / target for k in range(10)])
    up = decode_video(path, fps=48.0)  # upsampling repeats held frames
    assert up.frames.shape[0] == 48


@pytest.mark.parametrize("fps", [24.0, 30000 / 1001])
def test_resampling_to_the_source_rate_is_identity_despite_ms_timestamps(tmp_path, fps):
    path = make_video(tmp_path / "r.mkv", seconds=1.0, fps=fps, size=(32, 32))  # mkv rounds pts to 1 ms
    decoded = decode_video(path, fps=fps)
    assert indices(decoded) == [i % 20 for i in range(int(round(fps)))]


def test_resize_plans_keep_aspect_and_multiples(tmp_path):
    assert plan_resize(640, 360, "fit", 320, 320).out_w == 320
    plan = plan_resize(640, 360, "fit", 320, 320)
    assert (plan.out_w, plan.out_h) == (320, 180)
    plan = plan_resize(640, 360, "crop", 256, 256)
    assert (plan.scaled_w, plan.scaled_h, plan.out_w, plan.out_h) == (455, 256, 256, 256)
    plan = plan_resize(640, 360, "fit", 500, 0, multiple_of=32)
    assert (plan.out_w, plan.out_h) == (480, 256)  # 500x281 cut to multiples of 32
    with pytest.raises(MediaError, match="resize mode"):
        plan_resize(10, 10, "zoom")
    path = make_video(tmp_path / "odd.mkv", seconds=0.2, fps=10, size=(65, 49), pix_fmt="yuv444p")
    decoded = decode_video(path, resize={"mode": "fit", "width": 40, "height": 0, "multiple_of": 8})
    assert decoded.frames.shape[1:] == (24, 40, 3)


def test_timeline_indices_match_stream_rules():
    assert timeline_indices(10, 10.0, fps=5.0) == [0, 2, 4, 6, 8]
    assert timeline_indices(10, 10.0, start=0.25, duration=0.5) == [3, 4, 5, 6, 7]
    assert timeline_indices(10, 10.0, fps=20.0, max_frames=4) == [0, 0, 1, 1]
    with pytest.raises(MediaError, match="fps"):
        timeline_indices(10, 10.0, fps=-1.0)


# ----------------------------------------------------------------------------- audio I/O
@pytest.mark.parametrize("suffix", [".wav", ".flac", ".mp3", ".ogg", ".m4a"])
def test_load_audio_formats_sample_accurate(tmp_path, suffix):
    path = make_audio(tmp_path / f"c{suffix}", seconds=1.0, sample_rate=48000, channels=2, kind="clicks")
    wave, rate = load_audio(path)
    assert rate == 48000 and wave.shape == (2, 48000)
    clicks = (wave[0].abs() > 0.2).nonzero().flatten().tolist()
    assert clicks[:4] == [0, 12000, 24000, 36000]
    window, _ = load_audio(path, start=0.3, duration=0.4)
    assert window.shape[-1] == 19200
    assert (window[0].abs() > 0.2).nonzero().flatten().tolist() == [24000 - 14400]


def test_load_audio_resample_and_channels(tmp_path):
    path = make_audio(tmp_path / "t.flac", seconds=0.5, sample_rate=44100, channels=2, kind="tone")
    wave, rate = load_audio(path, sample_rate=16000, channels=1)
    assert rate == 16000 and wave.shape == (1, 8000)
    assert dominant_hz(wave, rate) == pytest.approx(440.0, abs=2.0)
    assert float(wave.abs().max()) == pytest.approx(0.5 * 0.95, abs=0.02)  # mean of 0.5 and 0.45 channels
    five_one = torch.ones(6, 10)
    assert convert_channels(five_one, 2).shape == (2, 10)
    assert torch.allclose(convert_channels(five_one, 2), torch.ones(2, 10))
    assert convert_channels(torch.ones(1, 5), 2).shape == (2, 5)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])  # mkv: 1 ms timestamps on 1024-sample AAC frames
def test_audio_of_a_video_and_probe(tmp_path, suffix):
    path = make_video(tmp_path / f"a{suffix}", seconds=1.0, fps=24, size=(32, 32), audio="clicks", channels=2)
    info = probe_audio(path)
    assert len(info) == 1 and info[0].sample_rate == 48000 and info[0].channels == 2
    wave, rate = load_audio(path, start=0.5, duration=0.5)
    assert wave.shape[-1] == 24000
    assert (wave[0].abs() > 0.2).nonzero().flatten()[:2].tolist() == [0, 12000]
    assert probe_video(path).has_audio


def test_bad_inputs_give_clear_errors(tmp_path):
    good = make_video(tmp_path / "good.mp4", seconds=1.0, fps=24, size=(32, 32))
    with pytest.raises(MediaError, match="no audio stream"):
        load_audio(good)
    with pytest.raises(MediaError, match="not a readable media file"):
        decode_video(make_corrupt(tmp_path / "noise.mp4"))
    with pytest.raises(MediaError):
        decode_video(make_corrupt(tmp_path / "cut.mp4", good, keep_fraction=0.05))
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(MediaError, match="empty"):
        load_audio(empty)
    zero = tmp_path / "zero.wav"
    with wave_module.open(str(zero), "wb") as w:  # a valid header with no samples
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
    with pytest.raises(MediaError, match="no audio samples"):
        load_audio(zero)
    with pytest.raises(MediaError, match="no frames in the window"):
        decode_video(good, start=5.0)
    with pytest.raises(MediaError, match="fps"):
        decode_video(good, fps=1e9)
    with pytest.raises(MediaError, match="not found"):
        load_audio(tmp_path / "missing.wav")


def test_truncated_file_keeps_what_decodes(tmp_path):
    good = make_video(tmp_path / "good.mkv", seconds=2.0, fps=24, size=(32, 32))
    cut = make_corrupt(tmp_path / "cut.mkv", good, keep_fraction=0.6)
    decoded = decode_video(cut)
    assert 0 < decoded.frames.shape[0] < 48


def test_paths_stay_inside_folder(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "ok.wav").write_bytes(b"x")
    (tmp_path / "secret.wav").write_bytes(b"x")
    assert resolve_inside(str(tmp_path / "in"), "ok.wav").endswith("ok.wav")
    for bad in ("../secret.wav", str(tmp_path / "secret.wav"), "sub/../../secret.wav"):
        with pytest.raises(MediaError, match="outside|absolute"):
            resolve_inside(str(tmp_path / "in"), bad)
    with pytest.raises(MediaError, match="not found"):
        resolve_inside(str(tmp_path / "in"), "nope.wav")


# ----------------------------------------------------------------------------- fit
@pytest.mark.parametrize("mode", FIT_MODES)
@pytest.mark.parametrize("target", [6000, 20000])
def test_fit_modes_exact_length(mode, target):
    rate = 16000
    wave = torch.from_numpy(synth_audio("tone", 0.75, rate, 2))
    out = fit_audio(wave, rate, target, mode)
    assert out.shape == (2, target)
    hz = dominant_hz(out[:, : min(target, 12000)], rate)
    if mode == "speed":
        assert hz == pytest.approx(440.0 * 12000 / target, rel=0.03)
    else:
        assert hz == pytest.approx(440.0, rel=0.03)
    if mode in ("stretch", "loop"):  # no dropouts at seams/frames
        body = out[0, 500:-500].abs().unfold(0, 80, 80).amax(dim=1)
        assert float(body.min()) > 0.4


def test_fit_rejects_absurd_parameters():
    wave = torch.ones(1, 100)
    with pytest.raises(MediaError, match="outside"):
        fit_audio(wave, 16000, 10000, "stretch")
    with pytest.raises(MediaError, match="fit mode"):
        fit_audio(wave, 16000, 50, "warp")
    with pytest.raises(MediaError, match="at least 1"):
        fit_audio(wave, 16000, 0)


# ----------------------------------------------------------------------------- loudness, limiter, ducking
def test_true_peak_limiter_catches_intersample_peaks():
    rate = 48000
    t = torch.arange(rate) / rate
    # fs/4 sine at 45 degrees: samples at 0.707 of the true peak, a classic inter-sample over.
    wave = 1.2 * torch.sin(2 * math.pi * (rate / 4) * t + math.pi / 4)[None].repeat(2, 1)
    assert true_peak_db(wave, rate) > 20 * math.log10(float(wave.abs().max())) + 2.5
    out = limit_true_peak(wave, rate, ceiling_db=-1.0)
    assert true_peak_db(out, rate) <= -1.0 + 0.05
    quiet = 0.1 * wave
    assert torch.equal(limit_true_peak(quiet, rate, -1.0), quiet)


@pytest.mark.parametrize("k", [1, 3, 64, 500])
def test_sliding_windows_match_brute_force(k):
    x = torch.randn(500, generator=torch.Generator().manual_seed(k))
    assert torch.equal(sliding_min(x, k), torch.stack([x[i:i + k].min() for i in range(501 - k)]))
    assert torch.allclose(sliding_mean(x, k), torch.stack([x[i:i + k].mean() for i in range(501 - k)]), atol=1e-5)


def test_ducking_lowers_background_under_speech():
    rate = 16000
    seconds = 3.0
    speech = torch.from_numpy(synth_audio("speechlike", seconds, rate, 1))
    music = torch.from_numpy(synth_audio("noise", seconds, rate, 1, amplitude=0.2))
    out = duck(music, speech, rate, depth_db=12.0, attack_ms=10.0, release_ms=100.0, hold_ms=50.0)
    t = np.arange(music.shape[-1]) / rate
    gate = speech_gate(t).astype(bool)
    talking = (t % 1.0 > 0.15) & (t % 1.0 < 0.45)  # well inside speech bursts
    quiet = (t % 1.0 > 0.85) & gate.__invert__()  # well after release
    ratio_db = lambda mask: 20 * np.log10(out[0].numpy()[mask].std() / music[0].numpy()[mask].std())
    assert ratio_db(talking) == pytest.approx(-12.0, abs=1.0)
    assert ratio_db(quiet) == pytest.approx(0.0, abs=0.5)


def test_mix_stems_sum_to_mix_and_meet_targets():
    rate = 48000
    dialogue = torch.from_numpy(synth_audio("speechlike", 2.0, rate, 1))
    effects = torch.from_numpy(synth_audio("clicks", 2.0, 44100, 2))
    music = torch.from_numpy(synth_audio("tone", 1.5, 24000, 2, freq=220.0))
    result = mix_tracks([Track(dialogue, rate, 0.0, "dialogue"), Track(effects, 44100, -6.0, "effects"),
                         Track(music, 24000, -3.0, "music", offset_s=0.5)],
                        target_lufs=-16.0, true_peak_db=-1.0, ducking={"depth_db": 10.0})
    assert result.sample_rate == 48000 and result.mix.shape == (2, 96000)
    stems = result.stems
    assert torch.allclose(stems["dialogue"] + stems["effects"] + stems["music"], result.mix, atol=1e-5)
    assert float(stems["music"][:, : int(0.5 * rate)].abs().max()) == 0.0  # offset respected
    assert true_peak_db(result.mix, rate) <= -1.0 + 0.05
    assert abs(result.report["output_lufs"] - (-16.0)) < 0.5
    with pytest.raises(MediaError, match="role"):
        mix_tracks([Track(dialogue, rate, role="narration")])


# ----------------------------------------------------------------------------- mux round trip, save
@pytest.mark.parametrize("container,codec,frame_samples", [("mp4", "aac", 1024), ("mkv", "opus", 960), ("mkv", "flac", 1)])
def test_mux_one_video_three_tracks_round_trip(tmp_path, container, codec, frame_samples):
    fps, frames = 25, 30
    images = torch.rand(frames, 47, 63, 3)  # odd size: padded to even
    tracks = [
        AudioTrack(torch.from_numpy(synth_audio("tone", 1.5, 48000, 2)), 48000, "Mix", "eng"),
        AudioTrack(torch.from_numpy(synth_audio("speechlike", 0.9, 48000, 1)), 48000, "Dialogue", "fra", default=True),
        AudioTrack(torch.from_numpy(synth_audio("noise", 1.2, 16000 if codec != "opus" else 48000, 2)),
                   16000 if codec != "opus" else 48000, "Music", "deu"),
    ]
    out = mux(tmp_path / f"d.{container}", images, fps, tracks, container, "h264", codec, preset="ultrafast")
    assert (out.width, out.height, out.frames) == (64, 48, frames)
    video_seconds = frames / fps
    info = probe_video(out.path)
    assert (info.width, info.height) == (64, 48)
    decoded = decode_video(out.path)
    assert decoded.frames.shape[0] == frames
    audio = probe_audio(out.path)
    assert [a.title for a in audio] == ["Mix", "Dialogue", "Music"]
    assert [a.language for a in audio] == ["eng", "fra", "deu"]
    assert [a.channels for a in audio] == [2, 1, 2]
    assert [a.sample_rate for a in audio] == [t.sample_rate for t in tracks]
    with av.open(out.path) as c:
        layouts = [s.codec_context.layout.name for s in c.streams.audio]
        defaults = [bool(s.disposition & av.stream.Disposition.default) for s in c.streams.audio]
    assert layouts == ["stereo", "mono", "stereo"]
    assert defaults == [False, True, False]
    for i, track in enumerate(tracks):
        wave, rate = load_audio(out.path, stream_index=i)
        assert abs(wave.shape[-1] - video_seconds * rate) <= frame_samples  # within one audio frame
    # Content survives: the dialogue track is silent where the speech gate is closed.
    dialogue, rate = load_audio(out.path, stream_index=1)
    t = np.arange(dialogue.shape[-1]) / rate
    assert float(dialogue[0, (t > 0.6) & (t < 0.85)].abs().max()) < 0.05
    assert float(dialogue[0, (t > 0.1) & (t < 0.4)].abs().max()) > 0.1


@pytest.mark.parametrize("align,frames", [("shortest", 10), ("longest", 16), ("video", 15)])
def test_mux_alignment_modes(tmp_path, align, frames):
    images = torch.rand(15, 32, 32, 3)
    tracks = [AudioTrack(torch.zeros(1, 8000), 16000, "a"), AudioTrack(torch.zeros(1, 12800), 16000, "b")]
    out = mux(tmp_path / "a.mkv", images, 20, tracks, "mkv", "h264", "flac", preset="ultrafast", align=align)
    assert out.frames == frames
    assert out.track_samples == [int(round(frames / 20 * 16000))] * 2


def test_mux_streams_frames_from_a_file_and_rejects_bad_options(tmp_path):
    src = make_video(tmp_path / "s.mp4", seconds=1.0, fps=24, size=(33, 31), pix_fmt="yuv444p")
    out = mux(tmp_path / "o.mp4", iter_frames(src), 24, [], "mp4", "h265", "aac", preset="ultrafast", even="crop")
    assert (out.width, out.height, out.frames) == (32, 30, 24)
    assert indices(decode_video(out.path))[:5] == [0, 1, 2, 3, 4]
    with pytest.raises(MediaError, match="mp4 takes audio codecs"):
        mux(tmp_path / "x.mp4", torch.rand(2, 8, 8, 3), 24, [], "mp4", "h264", "opus")
    with pytest.raises(MediaError, match="language"):
        mux(tmp_path / "y.mkv", torch.rand(2, 8, 8, 3), 24, [AudioTrack(torch.zeros(1, 10), 16000, language="english")],
            "mkv", "h264", "aac", preset="ultrafast")
    assert not (tmp_path / "y.mkv").exists()  # no half-written output left behind


@pytest.mark.parametrize("fmt", list(AUDIO_FORMATS))
def test_save_audio_formats(tmp_path, fmt):
    wave = torch.from_numpy(synth_audio("clicks", 0.5, 44100, 2))
    path = tmp_path / f"a.{audio_extension(fmt)}"
    rate = save_audio(path, wave, 44100, fmt)
    back, back_rate = load_audio(path)
    assert back_rate == rate == (48000 if fmt == "opus" else 44100)
    assert back.shape == (2, int(0.5 * rate))
    step = int(0.25 * rate)
    assert (back[0].abs() > 0.2).nonzero().flatten()[:2].tolist() == pytest.approx([0, step], abs=2)
