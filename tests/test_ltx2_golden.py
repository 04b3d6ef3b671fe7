"""LTX-2 AV transformer in JUST-DUB-IT's in-context layout against the reference fixtures."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import golden_files, golden_parts
from soundstage.models.common.checkpoint import safetensors_metadata
from soundstage.models.just_dub_it.in_context import add_noise, audio_state, isolation_masks, video_state
from soundstage.models.just_dub_it.lora import loras_merged, read_lora
from soundstage.models.just_dub_it.schedule import ltx2_sigmas, stage2_sigmas
from soundstage.models.just_dub_it.transformer import load_transformer

FILES = [f for f in golden_files("ltx2_justdubit") if f.with_suffix(".json").exists()]
FORWARD_INPUTS = (
    "video_latent", "audio_latent", "video_timesteps", "audio_timesteps", "video_positions",
    "audio_positions", "video_context", "audio_context", "a2v_mask", "v2a_mask",
)
OUTPUTS = ("video_velocity", "audio_velocity", "video_denoised", "audio_denoised")


class Fixture:
    def __init__(self, path: Path):
        self.path = path
        self.weights, self.inputs, self.outputs, self.meta = golden_parts(path)
        self.model = load_transformer(self.weights, safetensors_metadata(path))

    def run(self, **overrides):
        args = [overrides.get(k, self.inputs[k]) for k in FORWARD_INPUTS]
        with torch.no_grad():
            v_vel, a_vel = self.model(*args)
            v_den, a_den = self.model.denoise(*args)
        return dict(zip(OUTPUTS, (v_vel, a_vel, v_den, a_den)))

    def lora_path(self) -> Path:
        # The JSON names the file first, then a remark ("x.safetensors (same folder)").
        return self.path.parent / self.meta["lora"]["file"].split()[0]


@pytest.fixture(scope="module", params=FILES, ids=lambda p: p.stem)
def fixture(request, golden_dir) -> Fixture:
    return Fixture(request.param)


def _check(got: dict, fx: Fixture, prefix: str = "") -> None:
    for name in OUTPUTS:
        tol = fx.meta["tolerance"][prefix + name]
        err = (got[name].float() - fx.outputs[prefix + name]).abs().max().item()
        assert err <= tol, f"{prefix}{name}: max abs diff {err:.3g} > {tol}"


def test_in_context_forward_matches_reference(fixture):
    _check(fixture.run(), fixture)


def test_isolation_masks_change_the_output(fixture):
    # Without the a2v/v2a masks the context leaks into the target: the outputs must move.
    got = fixture.run(a2v_mask=None, v2a_mask=None)
    err = (got["video_velocity"] - fixture.outputs["video_velocity"]).abs().max().item()
    assert err > 10 * fixture.meta["tolerance"]["video_velocity"]


def test_layout_built_from_raw_inputs(fixture):
    inp = fixture.inputs
    fps = float(fixture.meta["layout"]["video_pixel_shape"]["fps"])
    video = add_noise(video_state(inp["raw.ref_video_latent"], fps, first_frame=inp["raw.first_frame_latent"]),
                      inp["raw.video_noise_tokens"])
    audio = add_noise(audio_state(inp["raw.ref_audio_latent"]), inp["raw.audio_noise_tokens"])
    sigma = inp["sigma"]
    built = {
        "video_latent": video.latent, "audio_latent": audio.latent,
        "video_positions": video.positions, "audio_positions": audio.positions,
        "video_denoise_mask": video.denoise_mask, "audio_denoise_mask": audio.denoise_mask,
        "video_timesteps": video.timesteps(sigma), "audio_timesteps": audio.timesteps(sigma),
    }
    for name, tensor in built.items():
        assert tensor.shape == inp[name].shape, name
        torch.testing.assert_close(tensor, inp[name], rtol=0, atol=1e-6, msg=name)
    a2v, v2a = isolation_masks(video, audio)
    assert torch.equal(a2v, inp["a2v_mask"]) and torch.equal(v2a, inp["v2a_mask"])
    # The model run on our own layout gives the reference outputs too.
    _check(fixture.run(**built, a2v_mask=a2v, v2a_mask=v2a), fixture)


def test_lora_merged_matches_reference_and_unloads(fixture):
    lora = read_lora(fixture.lora_path())
    weight = fixture.model.transformer.transformer_blocks[0].attn1.to_q.weight
    before = weight.clone()
    with loras_merged(fixture.model.transformer, [(lora, fixture.meta["lora"]["strength"])]):
        _check(fixture.run(), fixture, "lora.")
        assert (weight - before).abs().max() > 1e-3
    torch.testing.assert_close(weight, before, rtol=0, atol=1e-6)
    _check(fixture.run(), fixture)


def test_lora_stacking_halves_add_up(fixture):
    lora = read_lora(fixture.lora_path())
    strength = fixture.meta["lora"]["strength"]
    with loras_merged(fixture.model.transformer, [(lora, strength / 2), (lora, strength / 2)]):
        _check(fixture.run(), fixture, "lora.")


def test_scheduler_sigmas_match_reference(fixture):
    sched = fixture.meta["scheduler_sigmas"]
    lists = {k: v for k, v in sched.items() if k.startswith("steps")}
    assert lists
    for key, ref in lists.items():
        got = ltx2_sigmas(int(key[len("steps"):]))
        assert torch.equal(got, torch.tensor(ref, dtype=torch.float32)), key
    assert torch.equal(stage2_sigmas(), torch.tensor(sched["stage2_distilled"], dtype=torch.float32))
