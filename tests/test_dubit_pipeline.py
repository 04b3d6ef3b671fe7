"""DubIt (LTX-2.3) orchestration: schedules, token layout per stage, frozen audio, own voice, exact frame rate.

A recording stand-in for the transformer checks what each stage hands the network; the tiny 2.3 model runs
the same code end to end in test_dubit_nodes.py.
"""
from __future__ import annotations

from fractions import Fraction

import pytest
import torch

from soundstage.models.just_dub_it.dubit_layout import AUDIO_REFERENCE_GAP_S
from soundstage.pipelines import dubit as P

C_VIDEO, C_AUDIO, MEL = 128, 8, 16


class Recorder(torch.nn.Module):
    """x0 = latent * 0.5 (so every step moves the sample) and a log of every call."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.calls = []

    def denoise(self, vl, al, vt, at, vp, ap, tv, ta, a2v, v2a, *, video_sigma, audio_sigma):
        self.calls.append(dict(vl=vl.clone(), al=al.clone(), vt=vt.clone(), at=at.clone(), vp=vp, ap=ap,
                               masks=(a2v, v2a), video_sigma=float(video_sigma), audio_sigma=float(audio_sigma)))
        return vl.float() * 0.5, al.float() * 0.5


def _source(frames=17, fps=Fraction(30000, 1001), h=2, w=3, src_audio=40, voice=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    f = (frames - 1) // 8 + 1
    s = P.DubItSource(torch.randn(1, C_VIDEO, f, h, w, generator=g), torch.randn(1, C_VIDEO, f, 2 * h, 2 * w, generator=g),
                      torch.randn(1, C_AUDIO, src_audio, MEL, generator=g), frames, fps)
    if voice:
        s.voice = torch.randn(1, C_AUDIO, s.audio_frames, MEL, generator=g)
    return s


def _text():
    return P.TextContext(torch.randn(1, 4, 16), torch.randn(1, 4, 8))


def _upsample(latent):
    return latent.repeat_interleave(2, dim=-1).repeat_interleave(2, dim=-2)


def test_two_stages_follow_dubit():
    model, source = Recorder(), _source()
    video, audio = P.dubit(model, _upsample, source, _text(), seed=3)
    stage1, stage2 = model.calls[:8], model.calls[8:]
    assert len(model.calls) == 11  # 8 distilled steps at half size, then 3 at full size
    assert [c["video_sigma"] for c in stage1] == pytest.approx(P.DISTILLED_SIGMAS[:-1])
    assert [c["video_sigma"] for c in stage2] == pytest.approx(P.STAGE2_SIGMAS[:-1])
    assert all(c["masks"] == (None, None) for c in model.calls)  # DubIt: no attention masks
    # Stage 1: both streams generated; reference tokens at timestep 0, targets at sigma.
    n_v = source.video_half[0, 0].numel()
    n_a = source.audio_frames
    for c in stage1:
        assert c["audio_sigma"] == c["video_sigma"]
        assert torch.all(c["vt"][:, :n_v] == c["video_sigma"]) and torch.all(c["vt"][:, n_v:] == 0)
        assert torch.all(c["at"][:, :n_a] == c["audio_sigma"]) and torch.all(c["at"][:, n_a:] == 0)
        assert c["vl"].shape[1] == 2 * n_v and c["al"].shape[1] == n_a + source.audio.shape[2]
    # The whole source audio as reference, ending 0.04 s before time 0; the video reference at the target's positions.
    ap, vp = stage1[0]["ap"], stage1[0]["vp"]
    assert ap[0, 0, n_a:, 1].max().item() == pytest.approx(-AUDIO_REFERENCE_GAP_S, abs=1e-6)
    assert ap[0, 0, :n_a, 0].min().item() >= 0
    torch.testing.assert_close(vp[:, :, :n_v], vp[:, :, n_v:])
    # Stage 2: audio frozen (sigma 0, every audio timestep 0) with the stage-1 audio as target and reference.
    n_v2 = source.video_full[0, 0].numel()
    for c in stage2:
        assert c["audio_sigma"] == 0.0 and torch.all(c["at"] == 0)
        assert torch.all(c["vt"][:, :n_v2] == c["video_sigma"]) and torch.all(c["vt"][:, n_v2:] == 0)
    tokens = audio.permute(0, 2, 1, 3).flatten(2)
    torch.testing.assert_close(stage2[0]["al"][:, :n_a], tokens)
    torch.testing.assert_close(stage2[0]["al"][:, n_a:], tokens)
    assert stage2[0]["ap"][0, 0, n_a:, 1].max().item() == pytest.approx(-AUDIO_REFERENCE_GAP_S, abs=1e-6)
    assert video.shape == source.video_full.shape and audio.shape == (1, C_AUDIO, n_a, MEL)


def test_stage2_renoises_the_upscaled_latent_to_its_first_sigma():
    model, source = Recorder(), _source(seed=1)
    g = torch.Generator().manual_seed(5)
    up = torch.randn(source.video_full.shape, generator=g)
    audio = torch.randn(1, C_AUDIO, source.audio_frames, MEL, generator=g)
    gen = torch.Generator().manual_seed(9)
    P.dubit_stage2(model, source, up, audio, _text(), gen)
    noise = torch.randn(source.video_full.flatten(2).transpose(1, 2).shape[:1] + (2 * source.video_full[0, 0].numel(), C_VIDEO),
                        generator=torch.Generator().manual_seed(9))
    s0 = P.STAGE2_SIGMAS[0]
    n = source.video_full[0, 0].numel()
    first = model.calls[0]["vl"]
    target = up.flatten(2).transpose(1, 2)
    torch.testing.assert_close(first[:, :n], noise[:, :n] * s0 + target * (1 - s0))
    torch.testing.assert_close(first[:, n:], source.video_full.flatten(2).transpose(1, 2))  # the clean reference
    with pytest.raises(ValueError, match="does not match the final-size reference"):
        P.dubit_stage2(model, source, up[..., :1], audio, _text(), gen)


def test_reference_strength_renoises_the_video_reference_only():
    model, source = Recorder(), _source()
    P.dubit(model, _upsample, source, _text(), reference_strength=0.25)
    n_v, n_a = source.video_half[0, 0].numel(), source.audio_frames
    c = model.calls[0]
    torch.testing.assert_close(c["vt"][:, n_v:], torch.full_like(c["vt"][:, n_v:], 0.75 * c["video_sigma"]))
    assert torch.all(c["at"][:, n_a:] == 0)
    with pytest.raises(ValueError, match="reference_strength"):
        P.dubit(model, _upsample, source, _text(), reference_strength=1.5)


def test_own_voice_keeps_the_given_speech_frozen_in_both_stages():
    model, source = Recorder(), _source(voice=True)
    video, audio = P.dubit(model, _upsample, source, _text(), seed=2)
    assert torch.equal(audio, source.voice)  # bit for bit: never denoised
    tokens = source.voice.permute(0, 2, 1, 3).flatten(2)
    n_a = source.audio_frames
    for c in model.calls:
        assert c["audio_sigma"] == 0.0 and torch.all(c["at"] == 0)
        torch.testing.assert_close(c["al"][:, :n_a], tokens)
        torch.testing.assert_close(c["al"][:, n_a:], tokens)  # its own latent as the reference
    assert [c["video_sigma"] for c in model.calls[:8]] == pytest.approx(P.DISTILLED_SIGMAS[:-1])


def test_frame_rate_stays_exact():
    images = torch.rand(23, 128, 192, 3)
    frames, rate, w, h = P.dubit_geometry(images, 29.97, 0, 0, 0)
    assert rate == Fraction(30000, 1001) and frames == 17 and (w, h) == (192, 128)
    source = _source(frames=frames, fps=rate)
    # round(17 / 29.97 * 25) = 14 audio latents (int(fps) = 29 would give 15)
    assert source.audio_frames == round(17 / (30000 / 1001) * 25) == 14
    model = Recorder()
    P.dubit(model, _upsample, source, _text())
    vp = model.calls[0]["vp"]
    h_lat, w_lat = source.video_half.shape[-2:]
    second_frame_start = vp[0, 0, h_lat * w_lat, 0].item()  # latent frame 1 starts at pixel frame 1
    assert second_frame_start == pytest.approx(1 * 1001 / 30000, rel=1e-6)
    with pytest.raises(ValueError, match="DubIt Sampler: inputs 'width'/'height'"):
        P.dubit_geometry(images, 29.97, 0, 160, 128)


def test_source_audio_is_untrimmed_unless_the_clip_is_cut():
    wav = torch.randn(1, 16000)
    rate = Fraction(24)
    assert P.source_audio_span(wav, 16000, 24, 24, rate) is wav  # the 8k+1 snap does not trim the audio
    assert P.source_audio_span(wav, 16000, 24, 12, rate).shape[-1] == 8000


def test_voice_track_mixes_the_stems_under_the_speech_with_ducking():
    rate = 16000
    t = torch.arange(rate) / rate
    speech = torch.zeros(1, rate)
    speech[:, : rate // 2] = 0.3 * torch.sin(2 * torch.pi * 220 * t[: rate // 2])
    effects = 0.2 * torch.sin(2 * torch.pi * 1000 * torch.arange(3 * rate) / rate)[None]
    alone, r = P.voice_track(speech, rate, 0.75)
    assert r == rate and alone.shape == (1, int(0.75 * rate)) and torch.equal(alone, speech[:, : alone.shape[1]])
    mixed, _ = P.voice_track(speech, rate, 3.0, effects=(effects, rate), duck_depth_db=12.0)
    flat, _ = P.voice_track(speech, rate, 3.0, effects=(effects, rate), duck_depth_db=0.0)
    assert mixed.shape == (2, 3 * rate)  # the speech padded with silence to the clip
    # Where the speech plays the effects are ducked; well after it (release 300 ms) they are back.
    late = slice(int(2.5 * rate), 3 * rate)
    assert float(mixed[:, late].abs().max()) == pytest.approx(float(flat[:, late].abs().max()), rel=0.05)
    bg_during = (mixed[0, 2000:7000] - speech[0, 2000:7000]).abs().max()
    assert bg_during < 0.5 * (flat[0, 2000:7000] - speech[0, 2000:7000]).abs().max()
