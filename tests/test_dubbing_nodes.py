"""JUST-DUB-IT nodes: plain node functions, and workflows/dub_video.json run headless with tiny
random weights in the real single-file layout."""
from __future__ import annotations

import json
from pathlib import Path

import av
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / "workflows" / "dub_video.json"


def _write_tiny_models(models: Path) -> dict:
    from safetensors.torch import save_file

    from soundstage.testing.just_dub_it import write_tiny_gemma, write_tiny_single_file

    (models / "soundstage" / "ltx2").mkdir(parents=True)
    write_tiny_single_file(models / "soundstage" / "ltx2" / "ltx2_tiny.safetensors", seed=4)
    write_tiny_gemma(models / "text_encoders" / "gemma_tiny")
    (models / "loras").mkdir()
    g = torch.Generator().manual_seed(0)
    lora = {}
    for name, (out_f, in_f) in {"transformer_blocks.0.attn1.to_q": (16, 16), "transformer_blocks.1.audio_ff.net.2": (8, 32)}.items():
        lora[f"diffusion_model.{name}.lora_A.weight"] = torch.randn(4, in_f, generator=g) * 0.1
        lora[f"diffusion_model.{name}.lora_B.weight"] = torch.randn(out_f, 4, generator=g) * 0.1
    save_file(lora, str(models / "loras" / "dub_tiny.safetensors"))
    # fp8 weight storage, so the run also covers LoRAs applied unmerged beside fp8 layers.
    return {
        "2.ckpt_name": "ltx2_tiny.safetensors", "2.precision": "fp32", "2.weight_storage": "fp8_e4m3fn",
        "3.lora_name": "dub_tiny.safetensors",
        "4.text_encoder": str(Path("gemma_tiny") / "model.safetensors"), "4.precision": "fp32", "4.max_tokens": 16,
        "5.width": 0, "5.height": 0, "5.max_frames": 0, "5.long_clips": "trim",
        "6.steps": 2,
    }


def test_workflow_is_valid_ui_json():
    wf = json.loads(WORKFLOW.read_text())
    assert wf["version"] == 0.4
    types = {n["type"] for n in wf["nodes"]}
    assert {"LoadVideo", "SoundstageLoadLTX2AVModel", "SoundstageDubbingLoraLoader", "SoundstageEncodeDubbingContext",
            "SoundstageDubbingSampler", "SoundstageDecodeDubbedVideo", "SaveVideo"} <= types
    # link integrity of every workflow is checked in test_workflows.py


def test_workflow_runs_headless_with_tiny_weights(tmp_path):
    from soundstage.headless import runner as runner_mod  # the runner is part of the pack: never a skip
    from media_factory import make_video

    models, inputs, outputs = tmp_path / "models", tmp_path / "input", tmp_path / "output"
    inputs.mkdir()
    overrides = _write_tiny_models(models)
    # 18 frames at 24 fps -> trimmed to 17 (8k+1); 96x64 -> a 3x2 latent grid.
    make_video(inputs / "dub_source.mp4", seconds=0.75, fps=24, size=(96, 64), audio="tone", sample_rate=16000)
    runner = runner_mod.Runner(input_dir=inputs, output_dir=outputs, models_dir=models, device="cpu")
    result = runner.run(str(WORKFLOW), overrides=overrides)
    latents = result.values["6"][0]
    assert latents.video.shape == (1, 128, 3, 2, 3) and latents.frames == 17
    assert torch.isfinite(latents.video).all() and torch.isfinite(latents.audio).all()
    files = sorted(outputs.rglob("*.mp4"))
    assert len(files) == 1 and files[0].stat().st_size > 0
    with av.open(str(files[0])) as c:
        v = c.streams.video[0]
        assert (v.width, v.height) == (96, 64)
        assert sum(1 for _ in c.decode(video=0)) == 17
        assert len(c.streams.audio) == 1
        c.seek(0)
        rate = c.streams.audio[0].rate
        in_file = sum(f.samples for f in c.decode(audio=0))
    assert abs(in_file - 17 / 24 * rate) <= 1024, in_file  # the saved dub spans the clip (one AAC frame slack)
    audio = result.values["7"][1]
    assert audio["sample_rate"] == 24000
    # The dubbed audio lasts as long as the (trimmed) source clip.
    assert abs(audio["waveform"].shape[-1] / 24000 - 17 / 24) < 1e-3


def test_lora_loader_stacks_without_touching_the_shared_model(tmp_path):
    from safetensors.torch import save_file

    from soundstage.testing.just_dub_it import write_tiny_single_file
    from soundstage.nodes.dubbing import add_lora, load_ltx2_av

    path = write_tiny_single_file(tmp_path / "m.safetensors", seed=1)
    model = load_ltx2_av(str(path), "fp32")
    lora_path = tmp_path / "l.safetensors"
    save_file({"diffusion_model.transformer_blocks.0.attn1.to_q.lora_A.weight": torch.ones(2, 16),
               "diffusion_model.transformer_blocks.0.attn1.to_q.lora_B.weight": torch.ones(16, 2)}, str(lora_path))
    a = add_lora(model, str(lora_path), 0.5)
    b = add_lora(a, str(lora_path), 0.25)
    assert model.loras == () and len(a.loras) == 1 and [s for _, s in b.loras] == [0.5, 0.25]
    assert add_lora(model, str(lora_path), 0.0) is model
    bad = tmp_path / "bad.safetensors"
    save_file({"diffusion_model.transformer_blocks.7.attn1.to_q.lora_A.weight": torch.ones(2, 16),
               "diffusion_model.transformer_blocks.7.attn1.to_q.lora_B.weight": torch.ones(16, 2)}, str(bad))
    with pytest.raises(ValueError, match="Dubbing LoRA Loader: input 'lora_name'.*transformer_blocks.7"):
        add_lora(model, str(bad), 1.0)


def test_encode_context_needs_audio(tmp_path):
    from soundstage.compat import InputImpl, Types
    from soundstage.testing.just_dub_it import write_tiny_single_file
    from soundstage.nodes.dubbing import encode_context, load_ltx2_av

    model = load_ltx2_av(str(write_tiny_single_file(tmp_path / "m.safetensors")), "fp32")
    silent = InputImpl.VideoFromComponents(Types.VideoComponents(images=torch.rand(9, 64, 64, 3), frame_rate=24))
    with pytest.raises(ValueError, match="Encode Dubbing Context: input 'audio'"):
        encode_context(model, silent, None, 0, 0, 0)
    with pytest.raises(ValueError, match="multiples of 32"):
        encode_context(model, silent, None, 70, 64, 0)


def test_first_frame_h264_roundtrip_and_cover_crop():
    from soundstage.models.just_dub_it.av_codec import fit_frames, h264_roundtrip

    g = torch.Generator().manual_seed(0)
    frame = torch.rand(33, 47, 3, generator=g) * 0.5 + torch.linspace(0, 0.5, 47).view(1, 47, 1)
    assert h264_roundtrip(frame, 0) is frame
    out = h264_roundtrip(frame, 29)
    assert out.shape == (32, 46, 3)  # H.264 needs even sizes
    err = (out - frame[:32, :46]).abs().mean()
    assert 0 < err < 0.15  # lossy, but the same picture
    # Cover-resize then centre-crop: a 2:1 frame into a square keeps the middle columns.
    wide = torch.zeros(1, 32, 64, 3)
    wide[:, :, 16:48] = 1.0
    sq = fit_frames(wide, 32, 32)
    assert sq.shape == (1, 3, 32, 32) and sq.min() == 1.0


def test_workflow_keeps_ntsc_rate(tmp_path):
    """A 29.97 fps source is dubbed at 29.97 fps; the dub lasts as long as the kept frames."""
    from fractions import Fraction

    from helpers import NTSC_30, assert_ntsc_and_in_sync
    from media_factory import make_video

    from soundstage.headless import runner as runner_mod

    models, inputs, outputs = tmp_path / "models", tmp_path / "input", tmp_path / "output"
    inputs.mkdir()
    overrides = _write_tiny_models(models)
    # 0.75 s at 29.97 fps = 23 frames -> 17 kept (8k+1).
    make_video(inputs / "dub_source.mp4", seconds=0.75, fps=Fraction(NTSC_30), size=(96, 64), audio="tone",
               sample_rate=16000)
    result = runner_mod.Runner(input_dir=inputs, output_dir=outputs, models_dir=models, device="cpu").run(
        str(WORKFLOW), overrides=overrides)
    assert result.values["6"][0].fps == float(Fraction(NTSC_30))
    assert_ntsc_and_in_sync(sorted(outputs.rglob("*.mp4"))[0], expect_frames=17)


def test_long_clip_is_dubbed_in_speech_segments_to_its_exact_length(tmp_path):
    """A 29.97 fps source longer than one window: every frame is dubbed (segments cut at pauses), and the
    dub keeps the NTSC rate, the frame count and the audio length of the source."""
    from fractions import Fraction

    from helpers import NTSC_30, assert_ntsc_and_in_sync
    from media_factory import make_video

    from soundstage.headless import runner as runner_mod

    models, inputs, outputs = tmp_path / "models", tmp_path / "input", tmp_path / "output"
    inputs.mkdir()
    overrides = _write_tiny_models(models)
    overrides.update({"5.long_clips": "segments", "5.max_frames": 17, "6.steps": 1})
    # 1.1 s at 29.97 fps = 33 frames: windows of at most 17 frames, the last one re-encoded from earlier frames.
    make_video(inputs / "dub_source.mp4", seconds=1.1, fps=Fraction(NTSC_30), size=(96, 64), audio="tone",
               sample_rate=16000)
    result = runner_mod.Runner(input_dir=inputs, output_dir=outputs, models_dir=models, device="cpu").run(
        str(WORKFLOW), overrides=overrides)
    latents = result.values["6"][0]
    frames = latents.frames
    assert frames == 33 and len(latents.parts) >= 2
    covered = [f for seg, _ in latents.parts for f in range(seg.keep_start, seg.keep_end)]
    assert covered == list(range(frames))  # each frame kept exactly once
    assert all((p.frames - 1) % 8 == 0 for _, p in latents.parts)  # each piece dubbed as 8k+1 frames
    audio = result.values["7"][1]
    assert audio["waveform"].shape[-1] == round(frames * audio["sample_rate"] / Fraction(NTSC_30))
    assert_ntsc_and_in_sync(sorted(outputs.rglob("*.mp4"))[0], expect_frames=frames)


def test_speech_segments_cut_at_pauses_and_cover_every_frame():
    from soundstage.pipelines.just_dub_it import speech_segments

    activity = torch.ones(400)
    activity[100] = 0.0  # a pause 20 frames before the first nominal border (121)
    segs = speech_segments(400, 121, activity)
    assert segs[0].keep_end == 100
    assert [f for s in segs for f in range(s.keep_start, s.keep_end)] == list(range(400))
    for s in segs:
        assert (s.encode_frames - 1) % 8 == 0 and s.encode_frames <= 121
        assert s.encode_start <= s.keep_start and s.keep_end <= s.encode_start + s.encode_frames <= 400
