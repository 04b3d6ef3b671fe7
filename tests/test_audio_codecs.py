"""Audio codec nodes: tiny random MMAudio VAE + BigVGAN files in a temporary models folder,
AUDIO -> mel -> latent -> mel -> AUDIO through the nodes, checked against the models called directly."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from soundstage.compat import io
from soundstage.models.common.codecs.bigvgan import BigVGANConfig, load_bigvgan
from soundstage.models.common.codecs.mel import MEL_16K, LogMel, prepare_waveform
from soundstage.models.common.codecs.mmaudio_vae import MelVAEConfig, load_mel_vae
from soundstage.nodes import audio_codecs as nodes
from helpers import BIGVGAN_TINY, MEL_VAE_16K, bigvgan_generator_state_dict, mel_vae_state_dict, runner_folders, \
    temporary_models_dir

VAE_CFG = MelVAEConfig(**MEL_VAE_16K)
VOC_CFG = BigVGANConfig(**BIGVGAN_TINY)


def _raw_vae_sd() -> dict[str, torch.Tensor]:
    return mel_vae_state_dict(seed=0)


def _generator_sd() -> dict[str, torch.Tensor]:
    return bigvgan_generator_state_dict(seed=1)


@pytest.fixture()
def models_dir(tmp_path):
    with temporary_models_dir(tmp_path / "models", "soundstage/mmaudio") as root:
        folder = root / "soundstage" / "mmaudio"
        torch.save(_raw_vae_sd(), folder / "v1-16.pth")  # as released: a plain state dict, raw MP weights
        torch.save({"generator": _generator_sd()}, folder / "best_netG.pt")  # as released: under 'generator'
        yield folder


def _tone_audio(seconds: float = 0.3, rate: int = 22050) -> dict:
    t = torch.arange(int(seconds * rate)) / rate
    left = 0.4 * torch.sin(2 * math.pi * 440 * t)
    return {"waveform": torch.stack([left, 0.5 * left])[None], "sample_rate": rate}


def test_schemas_are_complete():
    assert [n.GET_SCHEMA().node_id for n in nodes.NODES] == [
        "SoundstageLoadMelVAE", "SoundstageLoadVocoder", "SoundstageAudioToMel",
        "SoundstageMelVAEEncode", "SoundstageMelVAEDecode", "SoundstageVocoder",
    ]
    for node in nodes.NODES:
        schema = node.GET_SCHEMA()
        assert schema.category.startswith("Soundstage/") and schema.display_name
        for inp in schema.inputs:
            assert inp.tooltip, f"{schema.node_id}.{inp.id} has no tooltip"


def test_round_trip_matches_direct_models(models_dir):
    assert {"v1-16.pth", "best_netG.pt"} <= set(nodes.codec_file_choices())
    vae = nodes.LoadMelVAE.execute("v1-16.pth", "fp32")[0]
    voc = nodes.LoadVocoder.execute("best_netG.pt", "fp32")[0]
    audio = _tone_audio()
    mel = nodes.AudioToMel.execute(audio, next(iter(nodes.FRONT_ENDS)))[0]
    latent = nodes.MelVAEEncode.execute(vae, mel, False, 0)[0]
    decoded = nodes.MelVAEDecode.execute(vae, latent)[0]
    out = nodes.VocoderDecode.execute(voc, decoded)[0]

    # Same numbers as calling the models on the same files directly.
    x = prepare_waveform(audio["waveform"], audio["sample_rate"], MEL_16K, multiple=2)
    ref_mel = LogMel(MEL_16K)(x)
    ref_vae = load_mel_vae(torch.load(models_dir / "v1-16.pth", weights_only=True))
    ref_voc = load_bigvgan(torch.load(models_dir / "best_netG.pt", weights_only=True)["generator"])
    with torch.no_grad():
        ref_z, _ = ref_vae.encode(ref_mel)
        ref_wav = ref_voc(ref_vae.decode(ref_z))
    assert torch.allclose(mel["mel"], ref_mel)
    assert latent["type"] == "audio" and latent["samples"].shape == (1, 20, ref_mel.shape[-1] // 2)
    assert torch.allclose(latent["samples"], ref_z, atol=1e-5)
    assert out["sample_rate"] == 16000
    assert ref_wav.shape == (1, 1, ref_mel.shape[-1] * 256) == (1, 1, 5120)  # padded to whole latent frames
    # 0.3 s at 22.05 kHz -> 4800 samples at 16 kHz: the padding is trimmed off again.
    assert out["waveform"].shape == (1, 1, 4800) and out["waveform"].dtype == torch.float32
    assert torch.allclose(out["waveform"], ref_wav[..., :4800], atol=1e-5)
    # A latent from a sampler has no source length: every latent frame is voiced.
    bare = nodes.MelVAEDecode.execute(vae, {"samples": latent["samples"], "type": "audio"})[0]
    assert nodes.VocoderDecode.execute(voc, bare)[0]["waveform"].shape == (1, 1, 5120)

    sampled = nodes.MelVAEEncode.execute(vae, mel, True, 7)[0]["samples"]
    again = nodes.MelVAEEncode.execute(vae, mel, True, 7)[0]["samples"]
    assert torch.equal(sampled, again) and not torch.allclose(sampled, latent["samples"])


def test_errors_name_node_and_input(models_dir):
    vae = nodes.LoadMelVAE.execute("v1-16.pth", "fp32")[0]
    voc = nodes.LoadVocoder.execute("best_netG.pt", "fp32")[0]
    mel44 = nodes.AudioToMel.execute(_tone_audio(), list(nodes.FRONT_ENDS)[1])[0]
    with pytest.raises(ValueError, match="Mel-VAE Encode: input 'mel' has 128 bands"):
        nodes.MelVAEEncode.execute(vae, mel44, False, 0)
    with pytest.raises(ValueError, match="Vocoder: input 'mel' has 128 bands, hop 512 at 44100 Hz"):
        nodes.VocoderDecode.execute(voc, mel44)
    with pytest.raises(ValueError, match=r"Mel-VAE Decode: input 'latent' must be \[batch, 20, frames\]"):
        nodes.MelVAEDecode.execute(vae, {"samples": torch.zeros(1, 40, 5), "type": "audio"})
    with pytest.raises(ValueError, match="Load Mel-VAE: input 'vae_name'"):
        nodes.LoadMelVAE.execute("best_netG.pt", "fp32")
    with pytest.raises(ValueError, match="Load Vocoder: input 'vocoder_name'"):
        nodes.LoadVocoder.execute("v1-16.pth", "fp32")
    with pytest.raises(FileNotFoundError, match="vae_name"):
        nodes.LoadMelVAE.execute("missing.pth", "fp32")


def test_vocoder_stops_when_interrupted(models_dir):
    from soundstage.compat import model_management

    voc = nodes.LoadVocoder.execute("best_netG.pt", "fp32")[0]
    mel = nodes.AudioToMel.execute(_tone_audio(0.1, 16000), next(iter(nodes.FRONT_ENDS)))[0]
    model_management.interrupt_current_processing(True)
    try:
        with pytest.raises(model_management.InterruptProcessingException):
            nodes.VocoderDecode.execute(voc, mel)
        assert not model_management.processing_interrupted()  # consumed by the raise, as in ComfyUI
    finally:
        model_management.interrupt_current_processing(False)


def test_custom_types():
    assert nodes.AudioVAE.io_type == "SOUNDSTAGE_AUDIO_VAE"
    assert nodes.Vocoder.io_type == "SOUNDSTAGE_VOCODER"
    assert nodes.Mel.io_type == "SOUNDSTAGE_MEL"
    assert io.Latent.io_type == "LATENT"


def test_reconstruct_workflow_runs_headless(models_dir, tmp_path):
    from media_factory import make_audio

    from soundstage.headless.core_nodes import load_audio_file
    from soundstage.headless.runner import Runner

    workflow = Path(__file__).resolve().parents[1] / "workflows" / "audio_reconstruct_mmaudio.json"
    inp, out = runner_folders(tmp_path)
    make_audio(inp / "speech.wav", seconds=0.25, sample_rate=24000, channels=2, kind="speechlike")
    result = Runner(input_dir=inp, output_dir=out, models_dir=models_dir.parents[1]).run(workflow)
    saved = result.outputs["8"]["audio"][0]
    wav, rate = load_audio_file(str(out / saved["subfolder"] / saved["filename"]))
    # 0.25 s -> 4000 samples at 16 kHz (padded to 4096 for the VAE, trimmed after the vocoder).
    assert rate == 16000 and wav.shape == (1, 4000)
    assert torch.isfinite(wav).all() and float(wav.abs().max()) > 0
