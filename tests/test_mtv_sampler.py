"""MTV sampler: schedule, batched CFG inputs, chunking with carried clean latents, callback."""
from __future__ import annotations

import pytest
import torch

from soundstage.models.mtv.sampler import (
    DEFAULT_GUIDANCE,
    AudioControl,
    assemble_chunks,
    chunk_windows,
    make_scheduler,
    num_chunks,
    sample_mtv,
)
from soundstage.testing.mtv import tiny_mtv

H, W = 4, 6


@pytest.fixture(scope="module")
def model():
    return tiny_mtv(seed=3)


def _control(frames: int, padded: int, seed: int = 0) -> AudioControl:
    g = torch.Generator().manual_seed(seed)
    streams = {k: torch.randn(padded, 5, 2, 16, generator=g) for k in ("vocal", "effect", "music")}
    return AudioControl(**streams, num_frames=frames)


def _ctx():
    return torch.randn(1, 8, 16, generator=torch.Generator().manual_seed(9))


def test_scheduler_is_zero_snr_v_prediction_trailing():
    s = make_scheduler()
    s.set_timesteps(50)
    assert s.config.prediction_type == "v_prediction"
    assert s.timesteps[0].item() == 999 and s.timesteps[-1].item() == 19
    assert s.alphas_cumprod[-1].item() < 1e-6  # zero terminal SNR
    assert DEFAULT_GUIDANCE == 3.5


def test_chunk_layout_covers_every_frame():
    assert num_chunks(49) == 1 and num_chunks(30) == 1
    assert num_chunks(93) == 2 and num_chunks(94) == 3
    w = torch.arange(100.0)[:, None]
    c1 = chunk_windows(w, 1)
    assert c1[0, 0].item() == 44 and c1.shape[0] == 49  # chunk 1 starts 5 frames before chunk 0 ends
    c2 = chunk_windows(w, 2)
    assert c2[:12, 0].tolist() == list(range(88, 100)) and c2[12:].abs().sum() == 0
    frames = [torch.full((49, 1), float(i)) for i in range(3)]
    video = assemble_chunks(frames, 120)
    assert video.shape[0] == 120 and video[49, 0] == 1 and video[93, 0] == 2


def test_deterministic_per_seed_and_seed_matters(model):
    ctl = _control(49, 49)
    a = sample_mtv(model, _ctx(), ctl, latent_height=H, latent_width=W, steps=3, seed=5)
    b = sample_mtv(model, _ctx(), ctl, latent_height=H, latent_width=W, steps=3, seed=5)
    c = sample_mtv(model, _ctx(), ctl, latent_height=H, latent_width=W, steps=3, seed=6)
    assert len(a) == 1 and a[0].shape == (1, 13, 4, H, W)
    assert torch.equal(a[0], b[0])
    assert (a[0] - c[0]).abs().max() > 1e-3
    assert torch.isfinite(a[0]).all()


def test_uncond_half_has_zeroed_text_and_audio(model, monkeypatch):
    seen = {}
    original_project = model.project_audio

    def spy_project(feats, device):
        seen["vocal"] = feats["vocal"].clone()
        return original_project(feats, device)

    original_forward = model.forward

    def spy_forward(latents, context, *a, **kw):
        seen.setdefault("context", context.clone())
        return original_forward(latents, context, *a, **kw)

    monkeypatch.setattr(model, "project_audio", spy_project)
    monkeypatch.setattr(model, "forward", spy_forward)
    ctl = _control(49, 49)
    sample_mtv(model, _ctx(), ctl, latent_height=H, latent_width=W, steps=1)
    assert seen["vocal"].shape[0] == 2 and seen["vocal"][0].abs().sum() == 0
    assert torch.equal(seen["vocal"][1], ctl.vocal)
    assert seen["context"][0].abs().sum() == 0 and torch.equal(seen["context"][1], _ctx()[0])


def test_long_audio_chunks_carry_clean_latents(model):
    ctl = _control(95, 97)
    calls = []
    chunks = sample_mtv(model, _ctx(), ctl, latent_height=H, latent_width=W, steps=2, seed=1,
                        carry=lambda lat: lat[:, -2:] * 0.5, callback=lambda i, n: calls.append((i, n)))
    assert len(chunks) == 3
    assert torch.equal(chunks[1][:, :2], chunks[0][:, -2:] * 0.5)
    assert torch.equal(chunks[2][:, :2], chunks[1][:, -2:] * 0.5)
    assert calls == [(i, 6) for i in range(1, 7)]


def test_first_chunk_image_conditioning_changes_result(model):
    ctl = _control(49, 49)
    base = sample_mtv(model, _ctx(), ctl, latent_height=H, latent_width=W, steps=2, seed=2)
    img = torch.randn(1, 1, 4, H, W)
    cond = sample_mtv(model, _ctx(), ctl, latent_height=H, latent_width=W, steps=2, seed=2, image_latents=img)
    assert (base[0] - cond[0]).abs().max() > 1e-4


def test_raising_callback_stops_sampling(model):
    class Stop(Exception):
        pass

    count = []

    def cb(i, n):
        count.append(i)
        if i == 2:
            raise Stop

    with pytest.raises(Stop):
        sample_mtv(model, _ctx(), _control(49, 49), latent_height=H, latent_width=W, steps=5, callback=cb)
    assert count == [1, 2]


def test_clean_frames_use_timestep_zero_modulation(model):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(1, 13, 4, H, W, generator=g)
    ctl = _control(49, 49)
    tokens = model.audio.project(ctl.vocal[None], ctl.effect[None], ctl.music[None])
    with torch.no_grad():
        at_zero = [model(x, _ctx(), torch.tensor([0.0]), tokens, clean_frames=k) for k in (0, 2)]
        at_mid = [model(x, _ctx(), torch.tensor([500.0]), tokens, clean_frames=k) for k in (0, 2)]
    assert torch.allclose(at_zero[0], at_zero[1], atol=1e-6)  # t=0 everywhere: the selection is a no-op
    assert (at_mid[0] - at_mid[1]).abs().max() > 1e-4


def test_multi_person_model_needs_and_uses_second_speaker():
    multi = tiny_mtv(seed=4, multi_person=True)
    ctl = _control(49, 49)
    with pytest.raises(ValueError, match="second speech stream"):
        sample_mtv(multi, _ctx(), ctl, latent_height=H, latent_width=W, steps=1)
    ctl.vocal_1 = torch.randn(49, 5, 2, 16, generator=torch.Generator().manual_seed(1))
    a = sample_mtv(multi, _ctx(), ctl, latent_height=H, latent_width=W, steps=2, seed=3)
    ctl.vocal_1 = torch.zeros(49, 5, 2, 16)
    b = sample_mtv(multi, _ctx(), ctl, latent_height=H, latent_width=W, steps=2, seed=3)
    assert (a[0] - b[0]).abs().max() > 1e-4


def test_projectors_can_live_off_the_compute_device():
    """``place`` keeps the projectors elsewhere; ``project_audio`` streams each in and puts it back."""
    fresh = tiny_mtv(seed=5)
    ctl = _control(49, 49)
    feats = {"vocal": ctl.vocal[None], "effect": ctl.effect[None], "music": ctl.music[None]}
    direct = fresh.audio.project(feats["vocal"], feats["effect"], feats["music"])
    moves = []
    proj = fresh.audio.audio_proj_music
    original_to = proj.to
    proj.to = lambda *a, **kw: (moves.append(a[0] if a else kw), original_to(*a, **kw))[1]
    streamed = fresh.project_audio(feats, "cpu")
    assert [str(m) for m in moves] == ["cpu", "cpu"]  # in for its pass, back to where it lived
    assert all(torch.equal(direct[k], streamed[k]) for k in direct)
    fresh.place("cpu", projector_device="meta")
    assert fresh.audio.audio_proj.proj1.weight.is_meta and fresh.audio.audio_proj_effect.conv1.weight.is_meta
    assert not fresh.audio.layers[0].audio_attn.query.weight.is_meta
    assert not fresh.backbone.proj_out.weight.is_meta


@pytest.mark.parametrize("fast", [False, True])
def test_fp8_backbone_storage_keeps_the_video(fast):
    """fp8 e4m3 block weights (one scale per tensor) change a 3-step video by fp8 rounding only;
    ``fast`` asks for fp8 GEMMs, which fall back to the same dequantised matmul off Ada/Hopper GPUs."""
    from soundstage.models.common.fp8 import Fp8Linear, tensor_bytes
    from soundstage.models.mtv.memory import store_fp8

    full = tiny_mtv(seed=3)
    fp8 = tiny_mtv(seed=3)
    n = store_fp8(fp8, fp8_matmul=fast)
    linears = [m for m in fp8.backbone.transformer_blocks.modules() if isinstance(m, Fp8Linear)]
    assert n == len(linears) > 0 and not any(isinstance(m, Fp8Linear) for m in fp8.audio.modules())
    assert tensor_bytes(fp8.backbone.transformer_blocks) < 0.5 * tensor_bytes(full.backbone.transformer_blocks)
    ctl = _control(49, 49)
    want = sample_mtv(full, _ctx(), ctl, latent_height=H, latent_width=W, steps=3, seed=5)[0]
    got = sample_mtv(fp8, _ctx(), ctl, latent_height=H, latent_width=W, steps=3, seed=5)[0]
    rel = ((got - want).norm() / want.norm()).item()
    assert 0 < rel < 0.05, rel  # rounded, not broken
