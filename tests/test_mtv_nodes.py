"""MTV nodes: plain node functions, and the example workflow run headless with tiny random weights."""
from __future__ import annotations

import json
from pathlib import Path

import av
import pytest
import torch

from helpers import runner_folders
from soundstage.models.mtv.text import build_prompt, fit_text_length

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / "workflows" / "audio_to_video_mtv.json"


def test_prompt_template_follows_paper_structure():
    p = build_prompt("Two men talk in a car", ["a man with glasses", "a bald man."], speaker=2)
    assert p == ("Two person conversation. Persons: Person1: a man with glasses. Person2: a bald man. "
                 "Person2 is speaking. Scene Description: Two men talk in a car.")
    assert build_prompt("A quiet street.", ["a man"], speaker=0) == "No conversation. Scene Description: A quiet street."
    with pytest.raises(ValueError, match="speaker 3"):
        build_prompt("x", ["a", "b"], speaker=3)


def test_text_length_fit_pads_with_zeros_and_truncates():
    ctx = torch.ones(1, 5, 4)
    padded = fit_text_length(ctx, 8)
    assert padded.shape == (1, 8, 4) and padded[:, 5:].abs().sum() == 0
    assert fit_text_length(torch.ones(1, 300, 4), 226).shape == (1, 226, 4)


def _audio(seconds, sr=16000, value=0.1):
    return {"waveform": torch.full((1, 1, int(seconds * sr)), value), "sample_rate": sr}


def test_demix_uses_given_stems_and_names_missing_separator():
    from soundstage.nodes.mtv import demix

    s, e, m = _audio(1, value=0.1), _audio(1, value=0.2), _audio(1, value=0.3)
    out = demix(None, s, e, m, None)
    assert out["speech"] is s and out["music"] is m
    with pytest.raises(ValueError, match="hdemucs_high_trained.pt"):
        demix(_audio(1), s, None, m, None)
    only = demix(None, s, None, None, None)  # missing stems without a mixture are silent
    assert only["effects"]["waveform"].abs().sum() == 0


def test_control_pads_streams_to_one_grid():
    from soundstage.models.mtv.wav2vec_features import AudioFeatures
    from soundstage.nodes.mtv import build_control

    a = AudioFeatures(torch.ones(49, 5, 2, 8), 40, 24.0)
    b = AudioFeatures(torch.ones(97, 5, 2, 8), 90, 24.0)
    ctl = build_control(a, b, a)
    assert ctl.vocal.shape[0] == 97 and ctl.vocal[49:].abs().sum() == 0 and ctl.num_frames == 90
    with pytest.raises(ValueError, match="SoundstageMTVControlNet"):
        build_control(a, AudioFeatures(torch.ones(49, 5, 2, 8), 40, 25.0), a)


def _write_tiny_models(models: Path) -> dict:
    from safetensors.torch import save_file
    from diffusers import AutoencoderKLCogVideoX

    from soundstage.models.mtv.convert import save_converted
    from soundstage.testing.mtv import (
        tiny_mtv, tiny_t5_state_dict, tiny_vae_config, tiny_wav2vec_ctc_state_dict, write_tiny_tokenizer,
    )

    (models / "soundstage" / "mtv").mkdir(parents=True)
    save_converted(tiny_mtv(seed=1, wav2vec_width=64, text_dim=16), models / "soundstage" / "mtv" / "mtv_tiny.safetensors")
    (models / "audio_encoders").mkdir()
    save_file(tiny_wav2vec_ctc_state_dict(hidden=64), str(models / "audio_encoders" / "w2v_tiny.safetensors"))
    (models / "text_encoders" / "t5_tiny").mkdir(parents=True)
    save_file(tiny_t5_state_dict(d_model=16), str(models / "text_encoders" / "t5_tiny" / "model.safetensors"))
    write_tiny_tokenizer(models / "text_encoders" / "t5_tiny" / "tokenizer.json")
    (models / "vae").mkdir()
    torch.manual_seed(0)
    vae = AutoencoderKLCogVideoX(**tiny_vae_config())
    save_file({k: v.contiguous() for k, v in vae.state_dict().items()}, str(models / "vae" / "vae_tiny.safetensors"))
    return {
        "12.ckpt_name": "mtv_tiny.safetensors", "12.weight_dtype": "float32",
        "13.vae_name": "vae_tiny.safetensors", "13.weight_dtype": "float32",
        "11.text_encoder": str(Path("t5_tiny") / "model.safetensors"),
        "6.wav2vec": "w2v_tiny.safetensors", "7.wav2vec": "w2v_tiny.safetensors", "8.wav2vec": "w2v_tiny.safetensors",
        "14.steps": 2,
    }


def test_workflow_is_the_mtv_graph():
    # Links and declared inputs are checked for every bundled workflow in test_workflows.py.
    wf = json.loads(WORKFLOW.read_text())
    assert wf["version"] == 0.4
    types = {n["type"] for n in wf["nodes"]}
    assert {"SoundstageMTVSampler", "SoundstageMTVControlNet", "SoundstageCogVideoXVAEDecode", "CreateVideo",
            "SaveVideo"} <= types


def test_workflow_runs_headless_with_tiny_weights(tmp_path):
    from soundstage.headless import runner as runner_mod  # the runner is part of the pack: never a skip
    from media_factory import make_audio

    models = tmp_path / "models"
    inputs, outputs = runner_folders(tmp_path)
    overrides = _write_tiny_models(models)
    seconds = 1.5  # 36 frames at 24 fps: one chunk (chunking is covered in test_mtv_sampler.py)
    make_audio(inputs / "mtv_mixture.wav", seconds, 16000, kind="speechlike")
    make_audio(inputs / "mtv_speech.wav", seconds, 16000, kind="speechlike")
    make_audio(inputs / "mtv_effects.wav", seconds, 16000, kind="clicks")
    make_audio(inputs / "mtv_music.wav", seconds, 16000, kind="tone")
    runner = runner_mod.Runner(input_dir=inputs, output_dir=outputs, models_dir=models, device="cpu")
    result = runner.run(str(WORKFLOW), overrides=overrides)
    latent = result.values["14"][0]
    assert latent["samples"].shape == (1, 4, 13, 4, 6)  # one chunk: [chunks, C, T, h, w]
    files = sorted(outputs.rglob("*.mp4"))
    assert len(files) == 1 and files[0].stat().st_size > 0
    with av.open(str(files[0])) as c:
        v = c.streams.video[0]
        assert (v.width, v.height) == (48, 32)
        frames = sum(1 for _ in c.decode(video=0))
        assert frames == 36
        assert len(c.streams.audio) == 1
        c.seek(0)
        rate = c.streams.audio[0].rate
        seconds_of_audio = sum(f.samples for f in c.decode(audio=0)) / rate
    assert abs(seconds_of_audio - seconds) < 0.05, seconds_of_audio  # the mixture rides along, whole
    images = result.values["15"][0]
    assert images.shape == (36, 32, 48, 3) and 0 <= images.min() and images.max() <= 1
    assert images.std() > 1e-3  # not a blank video


@pytest.mark.parametrize("path", __import__("conftest").golden_files("wav2vec_interp"), ids=lambda p: p.stem)
def test_wav2vec_node_function_reads_hf_folder(golden_dir, path, tmp_path):
    """The node path (file + config.json beside it, AUDIO dict in) reproduces the golden windows."""
    from safetensors.torch import load_file, save_file

    from soundstage.nodes.mtv import wav2vec_windows

    meta = json.loads(path.with_suffix(".json").read_text())
    t = load_file(str(path))
    folder = tmp_path / "wav2vec2-base-960h"
    folder.mkdir()
    save_file({k: v for k, v in t.items() if not k.startswith(("input.", "output."))}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(meta["constructor"]["Wav2Vec2Config"]))
    audio = {"waveform": t["input.wav"][None, None], "sample_rate": 16000}
    feats = wav2vec_windows(audio, str(folder / "model.safetensors"), meta["inputs"]["fps"], meta["inputs"]["clip_length"])
    ref = t["output.features_windowed"]
    assert (feats.windows - ref).abs().max().item() <= meta["tolerance"]["features_windowed"]
    assert feats.num_frames == -(-t["input.wav"].shape[0] * int(meta["inputs"]["fps"]) // 16000)


def test_load_model_fp8_weight_dtypes(tmp_path):
    from soundstage.models.common.fp8 import Fp8Linear
    from soundstage.models.mtv.convert import save_converted
    from soundstage.testing.mtv import tiny_mtv
    from soundstage.nodes.mtv import MTVLoadModel, load_mtv

    options = MTVLoadModel.define_schema().inputs[1].options
    assert {"bf16", "fp8_e4m3fn", "fp8_e4m3fn_fast"} <= set(options)
    path = tmp_path / "mtv_tiny.safetensors"
    save_converted(tiny_mtv(seed=1), path)
    for name, fast in (("fp8_e4m3fn", False), ("fp8_e4m3fn_fast", True)):
        loaded = load_mtv(str(path), name)
        layers = [m for m in loaded.model.modules() if isinstance(m, Fp8Linear)]
        assert loaded.dtype == torch.bfloat16 and layers and all(m.fp8_matmul is fast for m in layers)
    plain = load_mtv(str(path), "float32")
    assert plain.dtype == torch.float32 and not any(isinstance(m, Fp8Linear) for m in plain.model.modules())


def test_text_template_node_shows_its_prompt():
    from soundstage.nodes.mtv import MTVTextTemplate

    out = MTVTextTemplate.execute("A quiet street.", "a man\n\n", 0)
    assert out.args == ("No conversation. Scene Description: A quiet street.",)
    assert out.ui.as_dict() == {"text": out.args}
    with pytest.raises(ValueError, match="SoundstageMTVTextTemplate.*active_speaker"):
        MTVTextTemplate.execute("x", "a\nb", 3)


def test_vae_decode_tiled_goes_through_tiles_and_leaves_the_vae_as_it_was():
    from diffusers import AutoencoderKLCogVideoX

    from soundstage.models.common.device import Placement
    from soundstage.testing.mtv import tiny_vae_config
    from soundstage.nodes.model_patch import ModelHandle
    from soundstage.nodes.mtv import decode_video

    torch.manual_seed(0)
    vae = AutoencoderKLCogVideoX(**tiny_vae_config()).eval()
    # 32 px tiles overlapping by a quarter: smaller than the 48x64 frames, and sizes the tiles add up to
    vae.enable_tiling(tile_sample_min_height=32, tile_sample_min_width=32, tile_overlap_factor_height=0.25,
                      tile_overlap_factor_width=0.25)
    vae.disable_tiling()
    handle = ModelHandle(vae, Placement(torch.device("cpu"), torch.float32))
    latent = {"samples": torch.randn(1, 4, 2, 6, 8, generator=torch.Generator().manual_seed(1)), "mtv_num_frames": 5}
    whole = decode_video(handle, latent)
    tiled = decode_video(handle, latent, tiled=True)
    assert tiled.shape == whole.shape == (5, 48, 64, 3)
    assert (tiled - whole).abs().max() > 0 and not vae.use_tiling  # tiles were used, then the setting came back
    torch.testing.assert_close(decode_video(handle, latent), whole, rtol=0, atol=0)
