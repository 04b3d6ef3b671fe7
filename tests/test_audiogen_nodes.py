"""AudioGen-Omni / MMAudio nodes and their three workflows, with tiny random models, run headless."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from soundstage.compat import folder_paths
from soundstage.models.audiogen_omni.loader import save_mmdit
from soundstage.models.audiogen_omni.mmdit import MMDiT, MMDiTConfig
from soundstage.models.audiogen_omni.synchformer import Synchformer, SynchformerConfig
from soundstage.nodes import audiogen as nodes
from helpers import randomise, runner_folders, temporary_models_dir, write_codec_files


REPO = Path(__file__).resolve().parents[1]
CLIP_CFG = dict(embed_dim=16, vision_cfg=dict(image_size=32, patch_size=16, width=32, layers=1, head_width=16),
                text_cfg=dict(context_length=77, vocab_size=49408, width=32, heads=2, layers=1))
SYNC_DIM = 64
T5_DIM = 16
BASE = dict(latent_dim=20, clip_dim=16, sync_dim=SYNC_DIM, hidden_dim=32, depth=2, fused_depth=1, num_heads=2,
            sample_rate=16000, samples_per_latent=512, latent_seq_len=250, clip_seq_len=64, sync_seq_len=192)


def _tiny_t5(folder: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    words = ["<pad>", "</s>", "<unk>"] + "a an the song pop warm voice clear speaking noise guitar".split()
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    model = randomise(T5EncoderModel(T5Config(vocab_size=len(words), d_model=T5_DIM, d_kv=8, d_ff=32, num_layers=1,
                                               num_heads=2)), 5, 0.3)
    model.save_pretrained(str(folder))
    fast.save_pretrained(str(folder))


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    with temporary_models_dir(tmp_path_factory.mktemp("audiogen") / "models",
                              "soundstage/mmaudio", "clip_vision", "text_encoders") as root:
        _write_tiny_models(root)
        yield root


def _write_tiny_models(root: Path) -> None:
    mm = root / "soundstage" / "mmaudio"
    # An MMAudio-layout file (v1, 16 kHz latent), saved like the released .pth with its extra buffers.
    mmaudio = randomise(MMDiT(MMDiTConfig(**BASE, text_dim=32, text_seq_len=77)), 1)
    sd = {k: v.clone() for k, v in mmaudio.state_dict().items()}
    sd["latent_std"] = sd["latent_std"].abs() + 0.5
    sd["t_embed.freqs"] = torch.ones(128)
    torch.save(sd, mm / "mmaudio_tiny.pth")
    omni = randomise(MMDiT(MMDiTConfig(**BASE, text_dim=T5_DIM, text_seq_len=77, v2=True, lyrics_dim=24,
                                        lyrics_vocab=257, lyrics_blocks=1, timing_seconds=10)), 2)
    with torch.no_grad():
        omni.latent_std.abs_().add_(0.5)
    save_mmdit(omni, mm / "omni_tiny.safetensors")
    sync = randomise(Synchformer(SynchformerConfig(embed_dim=SYNC_DIM, depth=1, num_heads=1)), 3, 0.05)
    save_file({k: v.contiguous() for k, v in sync.state_dict().items()}, str(mm / "synchformer_tiny.safetensors"),
              metadata={"synchformer_heads": "1"})
    from soundstage.models.audiogen_omni.visual import open_clip_from_config

    clip = randomise(open_clip_from_config(CLIP_CFG).model, 4, 0.05)
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(root / "clip_vision" / "clip_tiny.safetensors"),
              metadata={"open_clip_config": json.dumps(CLIP_CFG)})
    _tiny_t5(root / "text_encoders" / "t5_tiny")
    write_codec_files(mm)


def _video(path: Path, seconds: float = 1.0, fps=25) -> Path:
    from media_factory import make_video

    return make_video(path, seconds=seconds, fps=fps, size=(64, 48))


def test_schemas_are_complete():
    for cls in nodes.NODES:
        schema = cls.GET_SCHEMA()
        assert schema.node_id.startswith("Soundstage") and schema.category == nodes.CATEGORY
        for inp in schema.inputs:
            assert inp.tooltip or inp.id in ("model", "visual_features", "text", "lyrics"), (schema.node_id, inp.id)


def test_node_chain(models_dir, tmp_path):
    from soundstage.headless.stubs import InputImpl

    model = nodes.LoadMMDiT.execute("mmaudio_tiny.pth", "fp32")[0]
    assert model.info["family"] == "mmaudio" and model.info["preset"] == "custom"
    enc = nodes.LoadMMDiTVisualEncoders.execute("synchformer_tiny.safetensors", "clip_tiny.safetensors", "dfn5b_h14_384",
                                                 "fp32")[0]
    video = InputImpl.VideoFromFile(str(_video(tmp_path / "v.mp4", 1.0)))
    feats = nodes.MMDiTVisualFeatures.execute(enc, video=video)[0]
    # MMAudio load_video: 25 frames at 25 fps give 24 sync slots (float64 counter drift), so 1 s
    # shrinks to 0.96 s: int(8 * 0.96) = 7 CLIP frames, 2 Synchformer segments.
    assert feats["duration_s"] == 0.96
    assert feats["clip"].shape == (1, 7, 16) and feats["sync"].shape == (1, 8 * 2, SYNC_DIM)
    text = nodes.MMDiTTextEncode.execute("rain on a tin roof", "", clip_encoders=enc)[0]
    # The demo's negative prompt "" is CLIP-encoded (not the learned empty string).
    assert text["features"].shape == (1, 77, 32) and text["negative"].shape == (1, 77, 32)
    latent = nodes.MMDiTSampler.execute(model, "audio", 0.0, 2, 4.5, 11, 2, visual_features=feats, text=text)[0]
    assert latent["samples"].shape == (2, 20, 30) and latent["duration_s"] == 0.96  # ceil(0.96 s * 31.25) frames
    again = nodes.sample_mmdit(model, task="audio", duration=0.0, steps=2, cfg=4.5, seed=11, variations=2, visual=feats,
                               text=text)
    assert torch.equal(latent["samples"], again["samples"])
    assert not torch.allclose(latent["samples"][0], latent["samples"][1])


def test_omni_speech_chain(models_dir):
    model = nodes.LoadMMDiT.execute("omni_tiny.safetensors", "fp32")[0]
    assert model.info["family"] == "audiogen_omni"
    t5 = nodes.LoadT5.execute("t5_tiny", 8, "fp32")[0]
    text = nodes.MMDiTTextEncode.execute("a clear voice", "noise", t5=t5)[0]
    assert text["features"].shape == (1, 8, T5_DIM) and text["mask"].sum() == 3
    lyrics = nodes.MMDiTLyricsEncode.execute("hello there", "auto", "none (UTF-8 symbols)")[0]
    out = nodes.MMDiTSampler.execute(model, "speech", 0.5, 2, 4.5, 0, 1, text=text, lyrics=lyrics)[0]
    assert out["samples"].shape == (1, 20, 16) and torch.isfinite(out["samples"]).all()


def test_empty_prompt_needs_no_text_encoder(models_dir):
    # A Synchformer-only encoder set (the tiny default has no CLIP) with an empty prompt: the model's learned
    # empty features, the same latents as no text at all; a prompt without an encoder is refused.
    model = nodes.LoadMMDiT.execute("mmaudio_tiny.pth", "fp32")[0]
    enc = nodes.LoadMMDiTVisualEncoders.execute("synchformer_tiny.safetensors", "none", "dfn5b_h14_384", "fp32")[0]
    text = nodes.MMDiTTextEncode.execute("", "", clip_encoders=enc)[0]
    assert text["kind"] == "none" and text["features"] is None and text["negative"] is None
    with_text = nodes.MMDiTSampler.execute(model, "audio", 0.5, 2, 4.5, 3, 1, text=text)[0]
    without = nodes.MMDiTSampler.execute(model, "audio", 0.5, 2, 4.5, 3, 1)[0]
    assert torch.equal(with_text["samples"], without["samples"])
    with pytest.raises(ValueError, match="MMDiT Text Encode.*clip_encoders"):
        nodes.MMDiTTextEncode.execute("rain", "", clip_encoders=enc)


def test_errors_name_node_and_input(models_dir):
    mm = nodes.LoadMMDiT.execute("mmaudio_tiny.pth", "fp32")[0]
    lyrics = nodes.MMDiTLyricsEncode.execute("la la", "auto", "none (UTF-8 symbols)")[0]
    with pytest.raises(ValueError, match="MMDiT Sampler: input 'lyrics'"):
        nodes.sample_mmdit(mm, task="song", duration=1.0, steps=1, cfg=1.0, seed=0, variations=1, lyrics=lyrics)
    with pytest.raises(ValueError, match="MMDiT Sampler: task 'speech' needs the 'lyrics' input"):
        nodes.sample_mmdit(mm, task="speech", duration=1.0, steps=1, cfg=1.0, seed=0, variations=1)
    with pytest.raises(ValueError, match="input 'duration'"):
        nodes.sample_mmdit(mm, task="audio", duration=0.0, steps=1, cfg=1.0, seed=0, variations=1)
    short = torch.rand(10, 16, 16, 3)  # 0.4 s at 25 fps: shorter than one Synchformer segment
    with pytest.raises(ValueError, match=r"MMDiT Visual Features: input 'video'/'images' lasts 0.40 s"):
        nodes.encode_visual(nodes.Encoders(synchformer=object(), clip=None, clip_handle=None), short, 25.0, 0.0)
    with pytest.raises(FileNotFoundError, match="Load MMDiT Model: input 'model_name'"):
        nodes.LoadMMDiT.execute("missing.pth", "fp32")
    bad = Path(folder_paths.get_folder_paths("soundstage_mmaudio")[0]) / "broken.safetensors"
    save_file({"audio_input_proj.0.weight": torch.zeros(4, 20, 7)}, str(bad))
    with pytest.raises(ValueError, match="input 'model_name'"):
        nodes.LoadMMDiT.execute("broken.safetensors", "fp32")


def _runner():
    from soundstage.headless import runner
    from soundstage.headless.registry import core_nodes

    # The workflows need these core stand-ins: losing one is a failure, not a reason to skip.
    missing = {"CreateVideo", "SaveVideo", "LoadVideo", "GetVideoComponents", "SaveAudio"} - set(core_nodes())
    assert not missing, f"headless core stand-ins missing: {sorted(missing)}"
    return runner


TINY_CODECS = {"20.vae_name": "v1-16.pth", "21.vocoder_name": "best_netG.pt", "20.precision": "fp32",
               "21.precision": "fp32"}
CASES = {
    "soundtrack_mmdit": ({"3.model_name": "mmaudio_tiny.pth", "4.synchformer_name": "synchformer_tiny.safetensors",
                          "4.clip_name": "clip_tiny.safetensors", "7.steps": 2}, "soundtrack_input.mp4"),
    "video_to_speech": ({"3.model_name": "omni_tiny.safetensors", "4.synchformer_name": "synchformer_tiny.safetensors",
                         "4.clip_name": "clip_tiny.safetensors", "9.steps": 2},
                        "talking_head_silent.mp4"),
    "song_from_lyrics": ({"1.model_name": "omni_tiny.safetensors", "2.t5_name": "t5_tiny", "2.max_length": 77,
                          "5.steps": 2, "5.duration": 1.0}, None),
}


@pytest.mark.parametrize("name", list(CASES))
def test_workflow_runs_headless(models_dir, tmp_path, name):
    runner_mod = _runner()
    import av

    overrides, video = CASES[name]
    inp, out = runner_folders(tmp_path)
    if video:
        _video(inp / video, 1.0)
    r = runner_mod.Runner(input_dir=inp, output_dir=out, models_dir=models_dir)
    r.run(REPO / "workflows" / f"{name}.json", overrides={**TINY_CODECS, **overrides})
    if video:
        files = sorted(p for p in out.rglob("*") if p.suffix in (".mp4", ".mkv", ".webm", ".mov"))
        assert files, "SaveVideo wrote no file"
        with av.open(str(files[0])) as c:
            assert c.streams.video and c.streams.audio, "the clip has no audio track"
            frames = sum(1 for _ in c.decode(video=0))
            assert frames == 25
            c.seek(0)
            samples = sum(f.samples for f in c.decode(audio=0))
            rate = c.streams.audio[0].rate
            assert abs(samples - rate) <= 0.05 * rate + 1024, samples  # 1 s of generated audio, not more or less
    else:
        files = sorted(p for p in out.rglob("*") if p.suffix in (".flac", ".wav", ".mp3", ".opus"))
        assert files, "SaveAudio wrote no file"
        with av.open(str(files[0])) as c:
            stream = c.streams.audio[0]
            samples = sum(f.samples for f in c.decode(audio=0))
            assert stream.rate == 16000 and abs(samples - 16000) <= 512 * 2  # 1 s at 16 kHz, whole latents


@pytest.mark.parametrize("name", ["soundtrack_mmdit", "video_to_speech"])
def test_workflow_keeps_ntsc_rate(models_dir, tmp_path, name):
    """A 29.97 fps clip comes out at 29.97 fps, its new soundtrack as long as its frames."""
    from fractions import Fraction

    from helpers import NTSC_30, assert_ntsc_and_in_sync

    runner_mod = _runner()
    overrides, video = CASES[name]
    inp, out = runner_folders(tmp_path)
    _video(inp / video, 1.0, fps=Fraction(NTSC_30))
    runner_mod.Runner(input_dir=inp, output_dir=out, models_dir=models_dir).run(
        REPO / "workflows" / f"{name}.json", overrides={**TINY_CODECS, **overrides})
    files = sorted(p for p in out.rglob("*") if p.suffix in (".mp4", ".mkv", ".webm", ".mov"))
    assert_ntsc_and_in_sync(files[0], expect_frames=30)


def test_long_clip_in_windows_keeps_ntsc_rate_and_length(models_dir, tmp_path):
    """A 29.97 fps clip longer than the sampler's window: soundtracked in overlapping windows, it comes out
    at 29.97 fps with every frame, and the vocoded audio lasts exactly as long as the clip."""
    from fractions import Fraction

    from helpers import NTSC_30, assert_ntsc_and_in_sync

    runner_mod = _runner()
    overrides, video = CASES["soundtrack_mmdit"]
    inp, out = runner_folders(tmp_path)
    _video(inp / video, 2.0, fps=Fraction(NTSC_30))
    result = runner_mod.Runner(input_dir=inp, output_dir=out, models_dir=models_dir).run(
        REPO / "workflows" / "soundtrack_mmdit.json",
        overrides={**TINY_CODECS, **overrides, "7.window_seconds": 0.96, "7.overlap_seconds": 0.32})
    latent = result.values["7"][0]
    assert latent["num_samples"] == round(latent["duration_s"] * 16000)
    assert latent["duration_s"] > 2 * 0.96  # three windows
    assert result.values["23"][0]["waveform"].shape[-1] == latent["num_samples"]  # the vocoder cuts to it
    files = sorted(p for p in out.rglob("*") if p.suffix in (".mp4", ".mkv", ".webm", ".mov"))
    assert_ntsc_and_in_sync(files[0], expect_frames=60)
