"""JUST-DUB-IT stage-1 sampling: Euler over the in-context layout, CFG, progress, frame rules."""
from __future__ import annotations

import pytest
import torch

from soundstage.models.just_dub_it.in_context import audio_positions, video_positions
from soundstage.pipelines.just_dub_it import DubbingContext, TextContext, dub_stage1
from soundstage.models.just_dub_it.sampler import euler_sample
from soundstage.models.just_dub_it.in_context import audio_state, add_noise
from soundstage.models.just_dub_it.schedule import check_resolution, latent_frames, ltx2_sigmas, valid_frame_count
from soundstage.testing.just_dub_it import random_native_checkpoint
from soundstage.models.just_dub_it.transformer import load_transformer


@pytest.fixture(scope="module")
def model():
    sd, meta = random_native_checkpoint(seed=3)
    return load_transformer(sd, meta)


@pytest.fixture(scope="module")
def ctx():
    g = torch.Generator().manual_seed(0)
    return DubbingContext(
        video_latent=torch.randn(1, 128, 2, 2, 3, generator=g),
        audio_latent=torch.randn(1, 8, 5, 16, generator=g),
        fps=25.0,
        first_frame_latent=torch.randn(1, 128, 1, 2, 3, generator=g),
    )


def _text(seed, length=4):
    g = torch.Generator().manual_seed(seed)
    return TextContext(torch.randn(1, length, 24, generator=g), torch.randn(1, length, 24, generator=g))


def test_stage1_shapes_progress_and_clean_first_frame(model, ctx):
    calls = []
    v, a = dub_stage1(model, ctx, _text(1), _text(2), steps=4, seed=5, callback=lambda i, n: calls.append((i, n)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert v.shape == ctx.video_latent.shape and a.shape == ctx.audio_latent.shape
    assert torch.equal(v[:, :, :1], ctx.first_frame_latent)  # the clean first frame is never denoised
    assert not torch.allclose(v[:, :, 1:], ctx.video_latent[:, :, 1:], atol=1e-2)
    assert torch.isfinite(v).all() and torch.isfinite(a).all()


def test_seed_reproducible_and_cfg_matters(model, ctx):
    pos, neg = _text(1), _text(2)
    v1, a1 = dub_stage1(model, ctx, pos, neg, steps=3, seed=7)
    v2, a2 = dub_stage1(model, ctx, pos, neg, steps=3, seed=7)
    assert torch.equal(v1, v2) and torch.equal(a1, a2)
    v3, _ = dub_stage1(model, ctx, pos, neg, steps=3, seed=8)
    assert (v3 - v1).abs().max() > 1e-3
    v4, _ = dub_stage1(model, ctx, pos, neg, steps=3, seed=7, cfg=1.0)
    assert (v4 - v1).abs().max() > 1e-4


def test_batched_cfg_equals_two_passes(model, ctx):
    pos, neg = _text(1), _text(2)
    vb, ab = dub_stage1(model, ctx, pos, neg, steps=3, seed=7, batch_cfg=True)
    vs, as_ = dub_stage1(model, ctx, pos, neg, steps=3, seed=7, batch_cfg=False)
    torch.testing.assert_close(vb, vs, rtol=0, atol=1e-4)
    torch.testing.assert_close(ab, as_, rtol=0, atol=1e-4)
    # Negative prompt of another length falls back to two passes: the same numbers as asking for them.
    v, a = dub_stage1(model, ctx, pos, _text(2, length=6), steps=2, seed=7)
    v2, a2 = dub_stage1(model, ctx, pos, _text(2, length=6), steps=2, seed=7, batch_cfg=False)
    assert torch.isfinite(v).all() and torch.equal(v, v2) and torch.equal(a, a2)
    assert (v - dub_stage1(model, ctx, pos, _text(2), steps=2, seed=7)[0]).abs().max() > 1e-4  # the negative counts


def test_raising_callback_interrupts(model, ctx):
    class Stop(Exception):
        pass

    seen = []

    def cb(i, n):
        seen.append(i)
        if i == 2:
            raise Stop

    with pytest.raises(Stop):
        dub_stage1(model, ctx, _text(1), None, steps=10, callback=cb)
    assert seen == [1, 2]


def test_euler_reaches_the_denoised_target_and_keeps_context():
    # With an oracle x0 the final Euler step (sigma -> 0) lands exactly on it.
    ref = torch.randn(1, 2, 4, 3)  # C=2, T=4, M=3 -> 4 target + 4 context tokens of width 6
    state = add_noise(audio_state(ref), torch.randn(1, 8, 6))
    target = torch.randn(1, 4, 6)
    (out,) = euler_sample([state], ltx2_sigmas(5), lambda lat, s: [torch.cat([target, lat[0][:, 4:]], 1)])
    torch.testing.assert_close(out.latent[:, :4], target, rtol=0, atol=1e-5)
    torch.testing.assert_close(out.latent[:, 4:], state.clean[:, 4:])


def test_frame_and_resolution_rules():
    assert valid_frame_count(121) == 121 and valid_frame_count(128) == 121 and valid_frame_count(8) == 1
    assert latent_frames(121) == 16
    with pytest.raises(ValueError):
        latent_frames(120)
    check_resolution(512, 768)
    with pytest.raises(ValueError):
        check_resolution(500, 768)


def test_positions_follow_the_causal_time_axis():
    pos = video_positions(3, 1, 1, fps=25.0)
    # Latent frame 0 covers pixel frame 0 only; frame k>=1 covers pixel frames 8k-7 .. 8k.
    torch.testing.assert_close(pos[0, 0, :, 0], torch.tensor([0.0, 1.0, 9.0]) / 25.0)
    torch.testing.assert_close(pos[0, 0, :, 1], torch.tensor([1.0, 9.0, 17.0]) / 25.0)
    apos = audio_positions(3)
    torch.testing.assert_close(apos[0, 0], torch.tensor([[0.0, 0.01], [0.01, 0.05], [0.05, 0.09]]))
