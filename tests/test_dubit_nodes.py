"""DubIt (LTX-2.3) and own-voice nodes: workflows/dub_video_ltx23.json and dub_own_voice_ltx23.json run headless
with a tiny LTX-2.3 single file; their files are checked (size, frames, exact frame rate, audio)."""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import pytest
import torch

from dubit_models import api_prompt, source_as_stems, write_tiny_dubit_models

REPO = Path(__file__).resolve().parents[1]
DUB = REPO / "workflows" / "dub_video_ltx23.json"
OWN = REPO / "workflows" / "dub_own_voice_ltx23.json"
# 192x128 final -> stage 1 at 96x64 (a 3x2 latent grid), stage 2 at 6x4.
SIZE = {"width": 192, "height": 128}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("dubit") / "models"
    return root, write_tiny_dubit_models(root)


def _run(workflow: dict, models, inputs: Path, outputs: Path, edit=lambda p: p):
    from soundstage.headless import runner as runner_mod

    root, names = models
    runner = runner_mod.Runner(input_dir=inputs, output_dir=outputs, models_dir=root, device="cpu")
    return runner.run(edit(api_prompt(workflow, names, SIZE)))


def _node(workflow: dict, node_type: str) -> str:
    return str(next(n["id"] for n in workflow["nodes"] if n["type"] == node_type))


def _clip(path: Path):
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = sum(1 for _ in c.decode(video=0))
        info = dict(size=(v.width, v.height), frames=frames, rate=v.average_rate, audio=len(c.streams.audio))
        c.seek(0)
        info["samples"] = sum(f.samples for f in c.decode(audio=0))
        info["sample_rate"] = c.streams.audio[0].rate
    return info


def test_dubit_workflow_runs_headless(models, tmp_path):
    from media_factory import make_video

    inputs, outputs = tmp_path / "input", tmp_path / "output"
    inputs.mkdir()
    # 0.75 s at 24 fps = 18 frames -> 17 (8k+1); the source is larger than the final size (cover + crop).
    make_video(inputs / "dub_source.mp4", seconds=0.75, fps=24, size=(200, 136), audio="tone", sample_rate=16000)
    wf = json.loads(DUB.read_text())
    result = _run(wf, models, inputs, outputs)
    latents = result.values[_node(wf, "SoundstageDubItSampler")][0]
    assert latents.video.shape == (1, 128, 3, 4, 6) and latents.frames == 17 and latents.fps == 24.0
    assert latents.audio.shape[2] == round(17 / 24 * 25) and latents.waveform is None
    assert torch.isfinite(latents.video).all() and torch.isfinite(latents.audio).all()
    files = sorted(outputs.rglob("*.mp4"))
    assert len(files) == 1
    clip = _clip(files[0])
    assert clip["size"] == (192, 128) and clip["frames"] == 17 and clip["audio"] == 1
    assert abs(clip["samples"] - 17 / 24 * clip["sample_rate"]) <= 1024  # the dub spans the clip


def test_dubit_workflow_keeps_ntsc_rate(models, tmp_path):
    from helpers import NTSC_30, assert_ntsc_and_in_sync
    from media_factory import make_video

    inputs, outputs = tmp_path / "input", tmp_path / "output"
    inputs.mkdir()
    make_video(inputs / "dub_source.mp4", seconds=0.75, fps=Fraction(NTSC_30), size=(192, 128), audio="tone",
               sample_rate=16000)
    wf = json.loads(DUB.read_text())
    result = _run(wf, models, inputs, outputs)
    latents = result.values[_node(wf, "SoundstageDubItSampler")][0]
    assert latents.fps == float(Fraction(NTSC_30))  # not int(29.97) = 29 as the reference writes it
    assert_ntsc_and_in_sync(sorted(outputs.rglob("*.mp4"))[0], expect_frames=17)


def test_own_voice_workflow_keeps_the_given_speech(models, tmp_path):
    from media_factory import make_audio, make_video
    from soundstage.pipelines.dubit import voice_track

    inputs, outputs = tmp_path / "input", tmp_path / "output"
    inputs.mkdir()
    make_video(inputs / "dub_source.mp4", seconds=0.75, fps=24, size=(192, 128), audio="tone", sample_rate=16000)
    make_audio(inputs / "speech.wav", seconds=0.6, sample_rate=22050, kind="speechlike")
    # No separator weights in a tiny test: the whole source track stands in for the effects and music stems.
    wf = json.loads(OWN.read_text())
    result = _run(wf, models, inputs, outputs, source_as_stems)
    own = _node(wf, "SoundstageDubItOwnVoice")
    latents = result.values[own][0]
    assert latents.video.shape == (1, 128, 3, 4, 6) and latents.frames == 17
    # The soundtrack is the given speech itself with the source under it, ducked: recomputed here from the files.
    given = result.values[_node(wf, "LoadAudio")][0]
    speech, rate = given["waveform"][0], given["sample_rate"]
    assert rate == 22050 and speech.shape[-1] == round(0.6 * 22050)
    source = result.values[_node(wf, "GetVideoComponents")][1]
    expect, _ = voice_track(speech, rate, 17 / 24, effects=(source["waveform"][0], source["sample_rate"]),
                            music=(source["waveform"][0], source["sample_rate"]), duck_depth_db=10.0)
    torch.testing.assert_close(latents.waveform["waveform"][0], expect, atol=1e-4, rtol=0)
    assert latents.waveform["sample_rate"] == rate
    clip = _clip(sorted(outputs.rglob("*.mp4"))[0])
    assert clip["size"] == (192, 128) and clip["frames"] == 17 and clip["sample_rate"] in (rate, 48000, 44100)
    assert abs(clip["samples"] / clip["sample_rate"] - 17 / 24) < 0.05


def test_own_voice_audio_latent_is_the_encoded_speech(models, tmp_path):
    """In own-voice mode the audio stream is never denoised: the latent out is the speech's latent."""
    from soundstage.compat import InputImpl, Types
    from soundstage.models.just_dub_it.av_codec import encode_audio, waveform_to_mel
    from soundstage.nodes.dubbing import load_ltx2_av, load_text_encoder, load_upsampler
    from soundstage.nodes.dubit import run_own_voice
    from soundstage.pipelines.dubit import fit_audio_latent, voice_span

    root, names = models
    model = load_ltx2_av(str(root / "soundstage/ltx2" / names["ckpt_name"]), "fp32")
    text = load_text_encoder(str(root / "text_encoders" / names["text_encoder"]), "fp32", 16)
    up = load_upsampler(str(root / "latent_upscale_models" / names["upscale_model"]), "fp32")
    g = torch.Generator().manual_seed(0)
    audio = {"waveform": torch.randn(1, 1, 16000, generator=g) * 0.1, "sample_rate": 16000}
    video = InputImpl.VideoFromComponents(Types.VideoComponents(images=torch.rand(9, 128, 128, 3, generator=g),
                                                                audio=audio, frame_rate=Fraction(25)))
    voice = {"waveform": torch.randn(1, 1, 8000, generator=g) * 0.2, "sample_rate": 16000}
    out = run_own_voice(model, text, up, video, voice, "she says hello", 128, 128, 0, 1.0, 3)
    with model.audio_vae.use() as a:
        expect = fit_audio_latent(encode_audio(a, waveform_to_mel(voice_span(voice["waveform"][0], 16000, 9, Fraction(25)),
                                                                  16000, a)).cpu(), round(9 / 25 * 25))
    assert torch.equal(out.audio, expect)
    with pytest.raises(ValueError, match="DubIt Own Voice: input 'voice'"):
        run_own_voice(model, text, up, video, {"waveform": torch.zeros(1, 1, 800), "sample_rate": 16000},
                      "she says hello", 128, 128, 0, 1.0, 3)


def test_dubit_refuses_an_ltx20_model_and_bad_inputs(models, tmp_path):
    from soundstage.compat import InputImpl, Types
    from soundstage.nodes.dubbing import load_ltx2_av, load_text_encoder, load_upsampler
    from soundstage.nodes.dubit import run_dubit
    from soundstage.testing.just_dub_it import write_tiny_single_file

    root, names = models
    text = load_text_encoder(str(root / "text_encoders" / names["text_encoder"]), "fp32", 16)
    up = load_upsampler(str(root / "latent_upscale_models" / names["upscale_model"]), "fp32")
    video = InputImpl.VideoFromComponents(Types.VideoComponents(images=torch.rand(9, 128, 128, 3), frame_rate=24))
    old = load_ltx2_av(str(write_tiny_single_file(tmp_path / "ltx20.safetensors")), "fp32")
    with pytest.raises(ValueError, match="DubIt Sampler: input 'model'.*LTX-2.0"):
        run_dubit(old, text, up, video, "hello", 128, 128, 0, 1.0, 0)
    model = load_ltx2_av(str(root / "soundstage/ltx2" / names["ckpt_name"]), "fp32")
    with pytest.raises(ValueError, match="DubIt Sampler: input 'audio'"):
        run_dubit(model, text, up, video, "hello", 128, 128, 0, 1.0, 0)
    with pytest.raises(ValueError, match="DubIt Sampler: input 'reference_strength'"):
        run_dubit(model, text, up, video, "hello", 128, 128, 0, 1.5, 0)


def test_just_dub_it_nodes_refuse_an_ltx23_model(models):
    from soundstage.nodes.dubbing import load_ltx2_av, require_ltx20

    root, names = models
    model = load_ltx2_av(str(root / "soundstage/ltx2" / names["ckpt_name"]), "fp32")
    with pytest.raises(ValueError, match="Dubbing Sampler: input 'model'.*LTX-2.3.*DubIt Sampler"):
        require_ltx20(model, "Dubbing Sampler")
