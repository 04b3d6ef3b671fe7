"""DualDub nodes and the soundtrack workflow, run headless with tiny random weights."""
from __future__ import annotations

import json
from pathlib import Path

import av
import pytest
import torch
from media_factory import make_audio, make_video
from test_dualdub_train import tiny_clip_folder, tiny_codec

from soundstage.media.audio_io import probe_audio
from soundstage.testing.dualdub import tiny_config
from soundstage.models.dualdub.io import save_dualdub
from soundstage.models.dualdub.model import DualDub
from soundstage.models.dualdub.text import train_bpe

WORKFLOW = Path(__file__).resolve().parents[1] / "workflows" / "soundtrack_dualdub.json"
SECONDS = 1.0


def _lightning_ckpt(codec, path: Path) -> None:
    """Save like the released WavTokenizer .ckpt: weight-normed SEANet convs + GAN keys under state_dict."""
    sd = {}
    for k, v in codec.state_dict().items():
        if k.startswith("feature_extractor.encodec.") and k.endswith((".conv.weight", ".convtr.weight")):
            base = k[: -len(".weight")]
            sd[base + ".weight_g"] = v.flatten(1).norm(dim=1).view(-1, *([1] * (v.dim() - 1)))
            sd[base + ".weight_v"] = v.clone()
        else:
            sd[k] = v
    sd["multiperioddisc.discriminators.0.convs.0.bias"] = torch.zeros(4)
    torch.save({"state_dict": sd, "epoch": 3}, path)


def _write_models(models: Path) -> dict:
    codec = tiny_codec()
    (models / "audio_encoders").mkdir(parents=True)
    _lightning_ckpt(codec, models / "audio_encoders" / "wt_tiny.ckpt")
    tiny_clip_folder(models / "clip_vision" / "clip_tiny")
    tok = train_bpe(["look out the train is coming", "hello there"], vocab_size=280)
    torch.manual_seed(0)
    cfg = tiny_config(codebook_size=codec.codebook_size, token_rate=codec.sample_rate / codec.hop_length,
                             video_dim=16, text_vocab_size=tok.get_vocab_size())
    save_dualdub(models / "soundstage" / "dualdub" / "dd_tiny.safetensors", DualDub(cfg), tok)
    return {"2.ckpt_name": "dd_tiny.safetensors", "2.codec_name": "wt_tiny.ckpt",
            "2.clip_name": "clip_tiny/model.safetensors", "2.precision": "fp32", "7.allow_early_end": False,
            "7.seed": 3}


def test_workflow_is_valid_ui_json():
    wf = json.loads(WORKFLOW.read_text())
    assert wf["version"] == 0.4
    types = {n["type"] for n in wf["nodes"]}
    assert {"LoadVideo", "SoundstageLoadDualDub", "SoundstageDualDubVideoEncode", "SoundstageDualDubTextEncode",
            "SoundstageDualDubSpeakerPrompt", "SoundstageDualDubSampler", "SoundstageDualDubDecode",
            "SoundstageMixTracks", "SoundstageMux"} <= types
    # link integrity of every workflow is checked in test_workflows.py


def test_workflow_runs_headless_with_tiny_weights(tmp_path):
    from soundstage.headless import runner as runner_mod  # the runner is part of the pack: never a skip
    models, inputs, outputs = tmp_path / "models", tmp_path / "input", tmp_path / "output"
    inputs.mkdir()
    overrides = _write_models(models)
    make_video(inputs / "dualdub_input.mp4", seconds=SECONDS, fps=12, size=(32, 32))
    make_audio(inputs / "reference_voice.wav", seconds=2.0, sample_rate=16000, kind="speechlike")
    runner = runner_mod.Runner(input_dir=inputs, output_dir=outputs, models_dir=models, device="cpu")
    result = runner.run(str(WORKFLOW), overrides=overrides)

    tokens = result.values["7"][0]
    assert tokens["audio_length"] == tokens["speech_length"] == 75  # 1 s x 75 tokens/s, no early end
    background, speech = result.values["8"]
    for track in (background, speech):
        assert track["sample_rate"] == 24000 and track["waveform"].shape == (1, 1, 24000)
        assert track["waveform"].abs().max() > 0
    assert not torch.equal(background["waveform"], speech["waveform"])

    files = sorted(outputs.rglob("*.mp4"))
    assert len(files) == 1
    assert [t.title for t in probe_audio(str(files[0]))] == ["Mix", "Dialogue", "Effects"]
    with av.open(str(files[0])) as c:
        assert len(c.streams.video) == 1
        assert float(c.duration / 1e6) == pytest.approx(SECONDS, abs=0.1)


def test_workflow_keeps_ntsc_rate(tmp_path):
    """A 29.97 fps clip: the dub comes out at 29.97 fps, its tracks as long as the frames."""
    from fractions import Fraction

    from helpers import NTSC_30, assert_ntsc_and_in_sync

    from soundstage.headless import runner as runner_mod

    models, inputs, outputs = tmp_path / "models", tmp_path / "input", tmp_path / "output"
    inputs.mkdir()
    overrides = _write_models(models)
    make_video(inputs / "dualdub_input.mp4", seconds=SECONDS, fps=Fraction(NTSC_30), size=(33, 31), pix_fmt="yuv444p")
    make_audio(inputs / "reference_voice.wav", seconds=2.0, sample_rate=16000, kind="speechlike")
    runner_mod.Runner(input_dir=inputs, output_dir=outputs, models_dir=models, device="cpu").run(
        str(WORKFLOW), overrides=overrides)
    assert_ntsc_and_in_sync(sorted(outputs.rglob("*.mp4"))[0], expect_frames=30)


def test_sampler_node_function_validates_inputs(tmp_path):
    from soundstage.nodes.dualdub import LoadedDualDub, dualdub_sample, dualdub_text_encode
    from soundstage.nodes.model_patch import ModelHandle
    from soundstage.models.common.device import Placement

    tok = train_bpe(["some words"], vocab_size=270)
    model = DualDub(tiny_config(text_vocab_size=tok.get_vocab_size()))
    dd = LoadedDualDub(ModelHandle(model, Placement(torch.device("cpu"), torch.float32)), tok)
    with pytest.raises(ValueError, match="DualDub Text Encode: input 'text'"):
        dualdub_text_encode(dd, "   ")
    text = dualdub_text_encode(dd, "some words")
    with pytest.raises(ValueError, match="input 'video_features'"):
        dualdub_sample(dd, text, "v2st", 1.0, 1.0, 0, 1.0, 1.0, 0, True)
    with pytest.raises(ValueError, match="input 'duration'"):
        dualdub_sample(dd, text, "tts", 0.0, 1.0, 0, 1.0, 1.0, 0, True)
    out = dualdub_sample(dd, text, "tts", 0.2, 1.0, 0, 1.0, 1.0, 0, False)
    assert out["speech_length"] == 5 and out["audio_length"] == 0  # 0.2 s x 25 tokens/s, tiny config
