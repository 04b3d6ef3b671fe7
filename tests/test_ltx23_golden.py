"""LTX-2.3 AV transformer in Lightricks' DubIt in-context layout against the reference fixtures
(stage 1 and stage 2, with and without the merged LoRA). Every size and setting comes from the
fixture files, so other sets (other sizes, seeds) run unchanged."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import golden_files, golden_parts
from soundstage.models.common.checkpoint import safetensors_metadata
from soundstage.models.just_dub_it.dubit_layout import audio_target_frames, dubit_audio_state, dubit_video_state
from soundstage.models.just_dub_it.in_context import add_noise
from soundstage.models.just_dub_it.lora import loras_merged, read_lora
from soundstage.models.just_dub_it.transformer import load_transformer

FILES = [f for f in golden_files("ltx23_dubit") if f.with_suffix(".json").exists()]
STAGES = ("stage1", "stage2")
OUTPUTS = ("video_velocity", "audio_velocity", "video_denoised", "audio_denoised")


class Fixture:
    def __init__(self, path: Path):
        self.path = path
        self.weights, self.inputs, self.outputs, self.meta = golden_parts(path)
        self.header = safetensors_metadata(path)
        self.model = load_transformer(self.weights, self.header)

    def args(self, stage: str, **overrides) -> tuple[list, dict]:
        inp = {**self.inputs, **{f"{stage}_{k}": v for k, v in overrides.items()}}
        names = ("video_latent", "audio_latent", "video_timesteps", "audio_timesteps", "video_positions",
                 "audio_positions")
        args = [inp[f"{stage}_{n}"] for n in names] + [inp["video_context"], inp["audio_context"]]
        return args, {"video_sigma": inp[f"{stage}_video_sigma"], "audio_sigma": inp[f"{stage}_audio_sigma"]}

    def run(self, stage: str, **overrides) -> dict[str, torch.Tensor]:
        args, sigmas = self.args(stage, **overrides)
        with torch.no_grad():
            v_vel, a_vel = self.model(*args, **sigmas)
            v_den, a_den = self.model.denoise(*args, **sigmas)
        return dict(zip(OUTPUTS, (v_vel, a_vel, v_den, a_den)))

    def lora_path(self) -> Path:
        # The JSON names the file first, then a remark ("x.safetensors (same folder)").
        return self.path.parent / self.meta["lora"]["file"].split()[0]


@pytest.fixture(scope="module", params=FILES, ids=lambda p: p.stem)
def fixture(request, golden_dir) -> Fixture:
    return Fixture(request.param)


def _check(got: dict, fx: Fixture, stage: str, prefix: str = "") -> None:
    for name in OUTPUTS:
        key = f"{prefix}{stage}_{name}"
        err = (got[name].float() - fx.outputs[key]).abs().max().item()
        assert err <= fx.meta["tolerance"][key], f"{key}: max abs diff {err:.3g} > {fx.meta['tolerance'][key]}"


def test_version_is_read_from_the_file(fixture):
    assert fixture.model.version == "2.3"
    cfg = fixture.model.config
    assert cfg.gated_attn and cfg.cross_attn_mod and not cfg.use_prompt_embeddings


@pytest.mark.parametrize("stage", STAGES)
def test_dubit_forward_matches_reference(fixture, stage):
    _check(fixture.run(stage), fixture, stage)


@pytest.mark.parametrize("stage", STAGES)
def test_lora_merged_matches_reference_and_unloads(fixture, stage):
    lora = read_lora(fixture.lora_path())
    weight = fixture.model.transformer.transformer_blocks[0].attn1.to_q.weight
    before = weight.clone()
    with loras_merged(fixture.model.transformer, [(lora, fixture.meta["lora"]["strength"])]):
        _check(fixture.run(stage), fixture, stage, "lora.")
    torch.testing.assert_close(weight, before, rtol=0, atol=1e-6)


@pytest.mark.parametrize("stage", STAGES)
def test_sigma_defaults_to_the_streams_step_sigma(fixture, stage):
    # Left out, each stream's sigma is its largest per-token timestep: DubIt's Modality.sigma.
    args, _ = fixture.args(stage)
    with torch.no_grad():
        got = fixture.model(*args)
    want = fixture.run(stage)
    torch.testing.assert_close(got[0], want["video_velocity"], rtol=0, atol=0)
    torch.testing.assert_close(got[1], want["audio_velocity"], rtol=0, atol=0)


@pytest.mark.parametrize("use_cross_timestep", [False, True])
def test_other_timestep_conventions_miss_the_reference(fixture, use_cross_timestep):
    # diffusers' forward takes AV scale/shift and gate from one timestep (own per-token, or with
    # use_cross_timestep both from the other stream's sigma); ltx-core 1.2.0 splits them.
    args, sigmas = fixture.args("stage1")
    mult = fixture.model.config.timestep_scale_multiplier
    with torch.no_grad():
        video, _ = fixture.model.transformer(
            hidden_states=args[0], audio_hidden_states=args[1], encoder_hidden_states=args[6],
            audio_encoder_hidden_states=args[7], timestep=args[2].flatten(1) * mult,
            audio_timestep=args[3].flatten(1) * mult, sigma=sigmas["video_sigma"] * mult,
            audio_sigma=sigmas["audio_sigma"] * mult, video_coords=args[4], audio_coords=args[5],
            use_cross_timestep=use_cross_timestep, return_dict=False)
    err = (video - fixture.outputs["stage1_video_velocity"]).abs().max().item()
    assert err > 10 * fixture.meta["tolerance"]["stage1_video_velocity"]


def _fps(positions: torch.Tensor) -> float:
    # The first latent frame covers one pixel frame, [0, 1/fps) (causal fix).
    return 1.0 / positions[0, 0, 0, 1].item()


def _pixel_frames(latent_frames: int) -> int:
    return (latent_frames - 1) * 8 + 1


def test_layout_built_from_raw_inputs(fixture):
    inp = fixture.inputs
    fps = _fps(inp["stage1_video_positions"])
    ref_video = inp["raw.stage1_ref_video_latent"]
    frames = audio_target_frames(_pixel_frames(ref_video.shape[2]), fps)
    assert frames == inp["stage1_audio_latent"].shape[1] - inp["raw.stage1_ref_audio_latent"].shape[2]
    sigma1 = inp["stage1_video_sigma"].item()
    sigma2 = inp["stage2_video_sigma"].item()
    # reference_strength (video only) is not a JSON number; the reference tokens' mask is 1 - strength.
    strength = 1.0 - inp["stage1_video_denoise_mask"][0, -1, 0].item()
    states = {
        "stage1_video": add_noise(dubit_video_state(ref_video, fps, reference_strength=strength),
                                  inp["raw.stage1_video_noise"]),
        "stage1_audio": add_noise(dubit_audio_state(inp["raw.stage1_ref_audio_latent"], frames),
                                  inp["raw.stage1_audio_noise"]),
        "stage2_video": add_noise(dubit_video_state(inp["raw.stage2_ref_video_latent"], fps,
                                                    target=inp["raw.stage2_upscaled_video_latent"],
                                                    reference_strength=strength),
                                  inp["raw.stage2_video_noise"], noise_scale=sigma2),
        "stage2_audio": dubit_audio_state(inp["raw.stage2_stage1_audio_latent"], frames,
                                          target=inp["raw.stage2_stage1_audio_latent"], frozen=True),
    }
    sigmas = {"stage1_video": sigma1, "stage1_audio": sigma1, "stage2_video": sigma2, "stage2_audio": 0.0}
    for name, state in states.items():
        built = {"latent": state.latent, "positions": state.positions, "denoise_mask": state.denoise_mask,
                 "timesteps": state.timesteps(sigmas[name])}
        for field, tensor in built.items():
            want = inp[f"{name}_{field}"]
            assert tensor.shape == want.shape, f"{name}_{field}"
            torch.testing.assert_close(tensor, want, rtol=0, atol=1e-6, msg=f"{name}_{field}")
        torch.testing.assert_close(state.clean, inp[f"raw.{name}_clean"], rtol=0, atol=0)
    # The reference audio ends 0.04 s before time 0.
    ref_end = states["stage1_audio"].positions[0, 0, frames:, 1].max().item()
    assert ref_end == pytest.approx(-0.04, abs=1e-6)
