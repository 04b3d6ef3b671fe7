"""Mel-VAE and vocoder nodes shared by AudioGen-Omni/MMAudio and Ovi.

AUDIO -> Audio To Mel -> Mel-VAE Encode -> LATENT -> Mel-VAE Decode -> Vocoder -> AUDIO.
The mel travels as ``SOUNDSTAGE_MEL`` ({"mel": [B, n_mels, F], "sample_rate", "hop_length"}); latents
are core LATENT dicts {"samples": [B, C, T], "type": "audio", ...}. Audio that came in through Audio To
Mel carries ``num_samples`` (its unpadded length) so the vocoder trims the padding off again.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..compat import io, model_management
from ..defaults import defaults_first
from ..models.common.checkpoint import load_file
from ..models.common.codecs.mel import MEL_16K, MEL_44K, LogMel, MelConfig, mel_config_for, prepare_waveform
from ..models.common.codecs.mel_refine import refine_to_mel
from .common import audio_latent, check_names, placement_for, seed_input, weight_dtype_input
from .errors import node_errors
from .model_folders import fitting, model_choices, resolve_model
from .model_patch import ModelHandle
from .progress import step_callback

CATEGORY = "Soundstage/Audio Codecs"
CODEC_FOLDERS = ("soundstage_mmaudio", "vae")  # MMAudio ext_weights first, then the standard vae folder
FRONT_ENDS = {"mmaudio_16k (80 mels, log10)": MEL_16K, "mmaudio_44k (128 mels, ln)": MEL_44K}

AudioVAE = io.Custom("SOUNDSTAGE_AUDIO_VAE")
Vocoder = io.Custom("SOUNDSTAGE_VOCODER")
Mel = io.Custom("SOUNDSTAGE_MEL")


@dataclass
class AudioVAEModel:
    """A loaded mel VAE and the front end its mels come from."""

    handle: ModelHandle
    mel: MelConfig


# --------------------------------------------------------------------------- plain functions


def codec_file_choices(kind: str | None = None) -> list[str]:
    """Files in the codec folders; with ``kind`` ("mel_vae" or "vocoder") only those that fit."""
    names: list[str] = []
    for folder in CODEC_FOLDERS:
        names += [n for n in model_choices(folder) if n not in names]
    return defaults_first(sorted(names if kind is None else fitting(names, kind)))


def resolve_codec_file(name: str, node: str, input_name: str) -> str:
    for folder in CODEC_FOLDERS[:-1]:
        try:
            return resolve_model(folder, name, node, input_name)
        except FileNotFoundError:
            continue
    return resolve_model(CODEC_FOLDERS[-1], name, node, input_name)


def load_audio_vae(path: str, precision: str, node: str = "Load Mel-VAE") -> AudioVAEModel:
    from ..models.common.codecs.mmaudio_vae import load_mel_vae  # diffusers: imported where used

    placement = placement_for(precision)
    with node_errors(node, "vae_name", ValueError):
        vae = load_mel_vae(load_file(path), dtype=placement.dtype, context=f"{node}: {Path(path).name}")
        mel = mel_config_for(vae.config.mel_bins)
    info = {"kind": "mmaudio_vae", "config": vae.config, "file": Path(path).name}
    return AudioVAEModel(ModelHandle(vae, placement, info=info), mel)


def load_vocoder(path: str, precision: str, node: str = "Load Vocoder") -> ModelHandle:
    from ..models.common.codecs.bigvgan import load_bigvgan  # diffusers: imported where used

    placement = placement_for(precision)
    with node_errors(node, "vocoder_name"):
        model = load_bigvgan(load_file(path), dtype=placement.dtype, context=f"{node}: {Path(path).name}")
    return ModelHandle(model, placement, info={"kind": "bigvgan", "config": model.config, "file": Path(path).name})


def audio_to_mel(audio: dict, config: MelConfig, node: str = "Audio To Mel") -> dict:
    waveform = audio.get("waveform") if isinstance(audio, dict) else None
    if waveform is None or waveform.shape[-1] == 0:
        raise ValueError(f"{node}: input 'audio' is empty")
    # Padded to whole latent frames (2 mel frames each) so the encoder never drops audio.
    x = prepare_waveform(waveform, int(audio["sample_rate"]), config, multiple=2)
    mel = LogMel(config)(x)
    # The unpadded length at the codec rate travels along so the vocoder output can be trimmed.
    num_samples = round(waveform.shape[-1] * config.sample_rate / int(audio["sample_rate"]))
    return {"mel": mel, "sample_rate": config.sample_rate, "hop_length": config.hop_length, "num_samples": num_samples}


def vae_encode(vae: AudioVAEModel, mel: dict, sample: bool, seed: int, node: str = "Mel-VAE Encode") -> dict:
    spec = mel["mel"]
    bins = vae.handle.info["config"].mel_bins
    if spec.shape[1] != bins or mel["sample_rate"] != vae.mel.sample_rate:
        raise ValueError(
            f"{node}: input 'mel' has {spec.shape[1]} bands at {mel['sample_rate']} Hz, but the VAE expects "
            f"{bins} bands at {vae.mel.sample_rate} Hz (use the matching Audio To Mel front end)"
        )
    if spec.shape[-1] % 2:
        spec = spec[..., :-1]  # one latent frame per 2 mel frames
    model_management.throw_exception_if_processing_interrupted()
    with vae.handle.use() as model, torch.no_grad():
        mean, logvar = model.encode(spec.to(vae.handle.device))
        if sample:
            gen = torch.Generator(device=mean.device).manual_seed(seed)
            from ..models.common.codecs.mmaudio_vae import MelVAE

            z = MelVAE.sample(mean, logvar, gen)
        else:
            z = mean
    latent = audio_latent(z.float().cpu(), sample_rate=vae.mel.sample_rate, latent_hop_length=vae.mel.hop_length * 2)
    if "num_samples" in mel:
        latent["num_samples"] = mel["num_samples"]
    return latent


def vae_decode(vae: AudioVAEModel, latent: dict, node: str = "Mel-VAE Decode") -> dict:
    z = latent.get("samples") if isinstance(latent, dict) else None
    channels = vae.handle.info["config"].latent_channels
    if z is None or z.dim() != 3 or z.shape[1] != channels:
        shape = None if z is None else tuple(z.shape)
        raise ValueError(f"{node}: input 'latent' must be [batch, {channels}, frames] for this VAE, got {shape}")
    model_management.throw_exception_if_processing_interrupted()
    with vae.handle.use() as model, torch.no_grad():
        spec = model.decode(z.to(vae.handle.device))
    out = {"mel": spec.float().cpu(), "sample_rate": vae.mel.sample_rate, "hop_length": vae.mel.hop_length}
    if "num_samples" in latent:
        out["num_samples"] = latent["num_samples"]
    return out


def vocode(vocoder: ModelHandle, mel: dict, node: str = "Vocoder", refine_steps: int = 0) -> dict:
    """The vocoder's waveform for ``mel``; with ``refine_steps`` > 0 pulled back onto the mel's band energies."""
    config = vocoder.info["config"]
    spec = mel["mel"]
    given = (spec.shape[1], mel["hop_length"], mel["sample_rate"])
    if given != (config.num_mels, config.hop_length, config.sample_rate):
        raise ValueError(
            f"{node}: input 'mel' has {given[0]} bands, hop {given[1]} at {given[2]} Hz, but the vocoder expects "
            f"{config.num_mels} bands, hop {config.hop_length} at {config.sample_rate} Hz"
        )
    callback = step_callback(len(config.upsample_rates))
    with vocoder.use() as model, torch.no_grad():
        wav = model(spec.to(vocoder.device), callback=callback)
        wav = refine_to_mel(wav.float(), spec.to(wav.device), mel_config_for(config.num_mels), refine_steps)
    if mel.get("num_samples"):
        wav = wav[..., : int(mel["num_samples"])]
    return {"waveform": wav.float().cpu().contiguous(), "sample_rate": int(config.sample_rate)}


# --------------------------------------------------------------------------- nodes


def _precision_input() -> io.Combo.Input:
    return weight_dtype_input("Compute precision. fp32 is exact and cheap for these small models; default = "
                              "bf16/fp16 on GPU.", default="fp32")


class LoadMelVAE(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageLoadMelVAE",
            display_name="Load Mel-VAE (MMAudio)",
            category=CATEGORY,
            description="MMAudio mel VAE: v1-16.pth (16 kHz, 20 ch, used by Ovi) or v1-44.pth (44.1 kHz, 40 ch).",
            inputs=[
                io.Combo.Input(
                    "vae_name", options=codec_file_choices("mel_vae"),
                    tooltip="From models/soundstage/mmaudio or models/vae. Size and sample rate are read from the file.",
                ),
                _precision_input(),
            ],
            outputs=[AudioVAE.Output(display_name="audio_vae")],
        )

    @classmethod
    def validate_inputs(cls, precision=None):
        return check_names(precision=precision)

    @classmethod
    def execute(cls, vae_name: str, precision: str = "fp32") -> io.NodeOutput:
        path = resolve_codec_file(vae_name, "Load Mel-VAE", "vae_name")
        return io.NodeOutput(load_audio_vae(path, precision))


class LoadVocoder(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageLoadVocoder",
            display_name="Load Vocoder (BigVGAN)",
            category=CATEGORY,
            description="BigVGAN generator: MMAudio's v1 16 kHz best_netG.pt or NVIDIA v2 bigvgan_generator.pt.",
            inputs=[
                io.Combo.Input(
                    "vocoder_name", options=codec_file_choices("vocoder"),
                    tooltip="From models/soundstage/mmaudio or models/vae. v1 (tanh) or v2 (clamp) is read from the file.",
                ),
                _precision_input(),
            ],
            outputs=[Vocoder.Output(display_name="vocoder")],
        )

    @classmethod
    def validate_inputs(cls, precision=None):
        return check_names(precision=precision)

    @classmethod
    def execute(cls, vocoder_name: str, precision: str = "fp32") -> io.NodeOutput:
        path = resolve_codec_file(vocoder_name, "Load Vocoder", "vocoder_name")
        return io.NodeOutput(load_vocoder(path, precision))


class AudioToMel(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageAudioToMel",
            display_name="Audio To Mel",
            category=CATEGORY,
            description="Log-mel spectrogram on MMAudio's front end (mono, resampled, padded to whole latent frames).",
            inputs=[
                io.Audio.Input("audio", tooltip="Any sample rate and channel count; channels are averaged."),
                io.Combo.Input(
                    "front_end", options=list(FRONT_ENDS), default=next(iter(FRONT_ENDS)),
                    tooltip="16 kHz for the v1-16 VAE / Ovi / BigVGAN v1; 44.1 kHz for the v1-44 VAE / BigVGAN v2.",
                ),
            ],
            outputs=[Mel.Output(display_name="mel")],
        )

    @classmethod
    def execute(cls, audio: dict, front_end: str) -> io.NodeOutput:
        if front_end not in FRONT_ENDS:
            raise ValueError(f"Audio To Mel: input 'front_end': unknown value {front_end!r}")
        return io.NodeOutput(audio_to_mel(audio, FRONT_ENDS[front_end]))


class MelVAEEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageMelVAEEncode",
            display_name="Mel-VAE Encode",
            category=CATEGORY,
            description="Mel spectrogram -> MMAudio VAE latent (the mean, or a sample when 'sample' is on).",
            inputs=[
                AudioVAE.Input("audio_vae", tooltip="From Load Mel-VAE."),
                Mel.Input("mel", tooltip="From Audio To Mel, on the front end matching this VAE."),
                io.Boolean.Input("sample", default=False, tooltip="Draw from the posterior instead of using its mean."),
                seed_input("Seed for the posterior draw (ignored when sample is off).", control_after_generate=False),
            ],
            outputs=[io.Latent.Output(display_name="latent")],
        )

    @classmethod
    def execute(cls, audio_vae: AudioVAEModel, mel: dict, sample: bool = False, seed: int = 0) -> io.NodeOutput:
        return io.NodeOutput(vae_encode(audio_vae, mel, sample, seed))


class MelVAEDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageMelVAEDecode",
            display_name="Mel-VAE Decode",
            category=CATEGORY,
            description="MMAudio VAE latent (e.g. from the MMDiT or Ovi sampler) -> mel spectrogram for the vocoder.",
            inputs=[
                AudioVAE.Input("audio_vae", tooltip="From Load Mel-VAE."),
                io.Latent.Input("latent", tooltip="Audio latent [batch, channels, frames], not normalised by the DiT."),
            ],
            outputs=[Mel.Output(display_name="mel")],
        )

    @classmethod
    def execute(cls, audio_vae: AudioVAEModel, latent: dict) -> io.NodeOutput:
        return io.NodeOutput(vae_decode(audio_vae, latent))


class VocoderDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageVocoder",
            display_name="Vocoder (Mel To Audio)",
            category=CATEGORY,
            description="Mel spectrogram -> waveform with BigVGAN, trimmed to the length the audio was encoded from.",
            inputs=[
                Vocoder.Input("vocoder", tooltip="From Load Vocoder."),
                Mel.Input("mel", tooltip="From Mel-VAE Decode or Audio To Mel, with the vocoder's bands and hop."),
                io.Int.Input(
                    "refine_steps", default=0, min=0, max=64, step=1, optional=True,
                    tooltip="0: the vocoder's waveform as it is. N: N passes that keep its phase and give each mel "
                            "band the mel's energy (Griffin-Lim-style projections, a few ms each). For speech from "
                            "the small soundstage-tiny vocoders (4 recovers the words); they blur sharp onsets, so "
                            "keep 0 for effects and for full-size BigVGANs.",
                ),
            ],
            outputs=[io.Audio.Output(display_name="audio")],
        )

    @classmethod
    def execute(cls, vocoder: ModelHandle, mel: dict, refine_steps: int = 0) -> io.NodeOutput:
        return io.NodeOutput(vocode(vocoder, mel, refine_steps=refine_steps))


NODES: list[type[io.ComfyNode]] = [LoadMelVAE, LoadVocoder, AudioToMel, MelVAEEncode, MelVAEDecode, VocoderDecode]

__all__ = [
    "NODES", "AudioVAEModel", "audio_to_mel", "vae_encode", "vae_decode", "vocode", "load_audio_vae",
    "load_vocoder",
]
