"""Ovi sampler: CFG + skip-layer guidance, i2av first-frame clamping, seeds, callback."""
from __future__ import annotations

import pytest
import torch

from soundstage.models.common.unipc import FlowUniPCMultistep, wan_flow_schedule
from soundstage.models.ovi.sampler import OviConditioning, OviSampling, initial_noise, sample_ovi
from soundstage.testing.ovi import tiny_fusion


SHAPE = dict(latent_frames=2, latent_height=4, latent_width=4, audio_length=9)


@pytest.fixture(scope="module")
def model():
    return tiny_fusion(seed=1, layers=2)


@pytest.fixture(scope="module")
def cond():
    g = torch.Generator().manual_seed(5)
    td = 24
    return OviConditioning(torch.randn(7, td, generator=g), torch.randn(3, td, generator=g),
                           torch.randn(5, td, generator=g))


def test_batched_cfg_equals_separate_passes_and_reference_loop(model, cond):
    s = OviSampling(steps=3, slg_layer=1, seed=3)
    v1, a1 = sample_ovi(model, cond, sampling=s, **SHAPE)
    v2, a2 = sample_ovi(model, cond, sampling=OviSampling(steps=3, slg_layer=1, seed=3, batch_cfg=False), **SHAPE)
    torch.testing.assert_close(v1, v2, atol=1e-4, rtol=0)
    torch.testing.assert_close(a1, a2, atol=1e-4, rtol=0)
    # Independent re-statement of the engine loop (positive pass; negative with its prompts and SLG).
    vid, aud = initial_noise((48, 2, 4, 4), (9, 20), 3)
    sched = wan_flow_schedule(3, 5.0)
    sv, sa = FlowUniPCMultistep(sched), FlowUniPCMultistep(sched)
    for t in sched.timesteps.tolist():
        tt = torch.tensor([t])
        vp, ap = model(vid[None], aud[None], tt, cond.positive[None], cond.positive[None])
        vn, an = model(vid[None], aud[None], tt, cond.video_negative[None], cond.audio_negative[None], slg_layer=1)
        vid = sv.step(vn + 4.0 * (vp - vn), vid[None])[0]
        aud = sa.step(an + 3.0 * (ap - an), aud[None])[0]
    torch.testing.assert_close(v1, vid, atol=1e-4, rtol=0)
    torch.testing.assert_close(a1, aud, atol=1e-4, rtol=0)


def test_seed_determinism_and_callback(model, cond):
    calls = []
    s = OviSampling(steps=3, seed=11, slg_layer=1)
    v1, a1 = sample_ovi(model, cond, sampling=s, callback=lambda i, n: calls.append((i, n)), **SHAPE)
    v2, a2 = sample_ovi(model, cond, sampling=s, **SHAPE)
    v3, _ = sample_ovi(model, cond, sampling=OviSampling(steps=3, seed=12, slg_layer=1), **SHAPE)
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert torch.equal(v1, v2) and torch.equal(a1, a2)
    assert (v1 - v3).abs().max() > 1e-2
    assert v1.shape == (48, 2, 4, 4) and a1.shape == (9, 20)
    assert torch.isfinite(v1).all() and torch.isfinite(a1).all()


def test_slg_and_guidance_change_the_result(model, cond):
    base = sample_ovi(model, cond, sampling=OviSampling(steps=2, slg_layer=1), **SHAPE)[0]
    no_slg = sample_ovi(model, cond, sampling=OviSampling(steps=2, slg_layer=0), **SHAPE)[0]
    cfg1 = sample_ovi(model, cond, sampling=OviSampling(steps=2, slg_layer=1, video_cfg=1.0), **SHAPE)[0]
    assert (base - no_slg).abs().max() > 1e-3
    assert (base - cfg1).abs().max() > 1e-3


def test_i2av_keeps_the_image_latent(model, cond):
    img = torch.randn(48, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    c = OviConditioning(cond.positive, cond.video_negative, cond.audio_negative, image_latent=img)
    v, a = sample_ovi(model, c, sampling=OviSampling(steps=3, slg_layer=1), **SHAPE)
    assert torch.equal(v[:, :1], img)
    t2v = sample_ovi(model, cond, sampling=OviSampling(steps=3, slg_layer=1), **SHAPE)[0]
    assert (v[:, 1:] - t2v[:, 1:]).abs().max() > 1e-3
    with pytest.raises(ValueError, match="image latent shape"):
        bad = OviConditioning(cond.positive, cond.video_negative, cond.audio_negative, image_latent=img[:, :, :2])
        sample_ovi(model, bad, sampling=OviSampling(steps=1), **SHAPE)


def test_callback_exception_interrupts(model, cond):
    class Stop(Exception):
        pass

    def cb(i, n):
        if i == 2:
            raise Stop

    with pytest.raises(Stop):
        sample_ovi(model, cond, sampling=OviSampling(steps=5), callback=cb, **SHAPE)


def test_long_clip_chunks_carry_frame_and_audio(model, cond):
    from soundstage.models.ovi.long_clip import audio_advance, sample_ovi_long, stitch_audio, stitch_frames

    assert audio_advance(31, 157) == 156 and audio_advance(2, 9) == 7  # 5 s model: 1 latent of audio overlap
    calls = []
    chunks = sample_ovi_long(model, cond, chunks=2, sampling=OviSampling(steps=2, slg_layer=1), callback=lambda i, n: calls.append((i, n)), **SHAPE)
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    first, second = chunks
    assert torch.equal(second.video[:, :1], first.video[:, -1:])
    assert second.audio_overlap == 2
    assert torch.equal(second.audio[:2], first.audio[-2:])
    assert (second.video[:, 1:] - first.video[:, 1:]).abs().max() > 1e-3  # new content, not a copy
    frames = stitch_frames([torch.zeros(5, 2, 2, 3), torch.ones(5, 2, 2, 3)])
    assert frames.shape[0] == 9 and frames[5:].eq(1).all()
    wav = stitch_audio([torch.zeros(1, 10), torch.ones(1, 10)], 4)
    assert wav.shape[-1] == 16 and wav[0, 6:10].tolist() == pytest.approx([0.125, 0.375, 0.625, 0.875])  # unit centres


def test_benchmark_script_runs_tiny():
    import runpy

    from conftest import REPO

    bench = runpy.run_path(str(REPO / "benchmarks" / "bench_ovi.py"), run_name="bench")
    res = bench["main"](["--repeat", "1", "--device", "cpu"])
    assert res["s_per_step_batched"] > 0 and res["s_per_forward_separate"] > 0 and res["video_tokens"] == 8


def test_long_clip_carries_several_latent_frames(model, cond):
    """carry=2: the previous chunk's second-to-last latent is the clean first frame, its last one is held
    in place while sampling; the chunk advances 4 * (F - 2) frames and its audio overlap grows to match."""
    from soundstage.models.ovi.long_clip import audio_advance, overlap_frames, sample_ovi_long, stitch_frames

    shape = dict(SHAPE, latent_frames=3)
    first, second = sample_ovi_long(model, cond, chunks=2, sampling=OviSampling(steps=2, slg_layer=1), carry=2,
                                    **shape)
    assert torch.equal(second.video[:, :2], first.video[:, -2:])
    assert second.video_overlap == overlap_frames(2) == 5
    assert second.audio_overlap == 9 - audio_advance(3, 9, carry=2) and second.audio_overlap > 1
    assert torch.equal(second.audio[:second.audio_overlap], first.audio[-second.audio_overlap:])
    frames = stitch_frames([torch.zeros(9, 1, 1, 3), torch.ones(9, 1, 1, 3)], overlap=5)
    assert frames.shape[0] == 13 and frames[:9].eq(0).all() and frames[9:].eq(1).all()
    with pytest.raises(ValueError, match="carry"):
        sample_ovi_long(model, cond, chunks=2, carry=3, **shape)


def test_long_clip_reencode_gets_the_previous_chunk_up_to_the_carried_frame(model, cond):
    from soundstage.models.ovi.long_clip import sample_ovi_long

    seen, image = [], torch.full((48, 1, 4, 4), 0.5)

    def reencode(latents):
        seen.append(latents.clone())
        return image

    shape = dict(SHAPE, latent_frames=3)
    first, second = sample_ovi_long(model, cond, chunks=2, sampling=OviSampling(steps=2, slg_layer=1), carry=2,
                                    reencode=reencode, **shape)
    (given,) = seen
    assert torch.equal(given, first.video[:, :2])  # up to and including the first carried latent frame
    assert torch.equal(second.video[:, :1], image) and torch.equal(second.video[:, 1:2], first.video[:, 2:])


def test_last_frame_reencoder_encodes_the_last_decoded_frame_as_an_image():
    # A later latent frame of the causal VAE holds 4 frames; the next chunk's first latent must be one image.
    from soundstage.models.ovi.video_vae import build_wan_vae, decode_video, encode_image, last_frame_reencoder
    from soundstage.training.defaults.ovi_parts import tiny_vae_config

    torch.manual_seed(0)
    vae = build_wan_vae(**tiny_vae_config(4, 8)).eval()
    latents = torch.randn(4, 3, 2, 2)
    got = last_frame_reencoder(vae)(latents)
    with torch.no_grad():
        frames = decode_video(vae, latents[None])
        want = encode_image(vae, frames[:, -1])[0]
    assert got.shape == (4, 1, 2, 2) and torch.allclose(got, want, atol=1e-5)
    assert not torch.allclose(got, latents[:, -1:], atol=1e-2)  # not the carried latent itself
