"""LTX-2's video VAE, audio VAE and vocoder (diffusers classes) from the native single file.

Key renames are diffusers' own conversion tables (video/audio VAE) plus a four-rule table for the
vocoder. The native file's ``config`` sections for these parts use ltx_core's block-list format;
we take the LTX-2.0 architecture from the diffusers class defaults (what diffusers converts the
release with) and read every width from the weights, so the strict load checks the rest.

LTX-2.3 (told apart by its keys) changes two parts: the video VAE (encoder res 4/6/4/2/2 to 1024
channels; decoder with a fourth, channel-keeping upsampling stage, no residual upsampling, zeros
padding, non-causal) and the vocoder (BigVGAN-v2 anti-aliased snakebeta at 16 kHz followed by a
bandwidth extension to 48 kHz: ``vocoder.vocoder.*``, ``vocoder.bwe_generator.*``,
``vocoder.mel_stft.*``). Both run on diffusers' classes (``AutoencoderKLLTX2Video`` configured as
diffusers' 2.3 converter does, ``LTX2VocoderWithBWE``); the flat-index key table is ours.
"""
from __future__ import annotations

import json
import re
from typing import Any, Mapping

import torch
from diffusers import AutoencoderKLLTX2Audio, AutoencoderKLLTX2Video
from diffusers.loaders.single_file_utils import (
    convert_ltx2_audio_vae_to_diffusers,
    convert_ltx2_vae_to_diffusers,
)
from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder, LTX2VocoderWithBWE

from ..common.checkpoint import CheckpointError, build_and_load, load_strict, rename_keys, select

VIDEO_VAE_PREFIX = "vae."
AUDIO_VAE_PREFIX = "audio_vae."
VOCODER_PREFIX = "vocoder."
# ltx_core Vocoder -> diffusers LTX2Vocoder module names.
VOCODER_RENAMES = (
    (r"^conv_pre\.", "conv_in."),
    (r"^ups\.", "upsamplers."),
    (r"^resblocks\.", "resnets."),
    (r"^conv_post\.", "conv_out."),
)
# ltx_core's AudioProcessor front end (audio_vae preprocessing section): 16 kHz log-mel.
MEL_N_FFT = 1024

# LTX-2.3 video VAE at the released widths (diffusers scripts/convert_ltx2_to_diffusers.py, version
# "2.3"; ltx_core vae config encoder_blocks / decoder_blocks). Widths are rescaled from the weights.
LTX23_VIDEO_VAE: dict[str, Any] = dict(
    block_out_channels=(256, 512, 1024, 1024), decoder_block_out_channels=(256, 512, 512, 1024),
    layers_per_block=(4, 6, 4, 2, 2), decoder_layers_per_block=(4, 6, 4, 2, 2),
    spatio_temporal_scaling=(True, True, True, True), decoder_spatio_temporal_scaling=(True, True, True, True),
    decoder_inject_noise=(False,) * 5, downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
    upsample_type=("spatiotemporal", "spatiotemporal", "temporal", "spatial"), upsample_residual=(False,) * 4,
    upsample_factor=(2, 2, 1, 2), decoder_causal=False, encoder_spatial_padding_mode="zeros",
    decoder_spatial_padding_mode="zeros",
)
# ltx_core flat block index -> diffusers nested path (odd = the resampler before the next stage).
_FLAT = re.compile(r"^(encoder\.down_blocks|decoder\.up_blocks)\.(\d+)\.")
_STATS = {"per_channel_statistics.mean-of-means": "latents_mean", "per_channel_statistics.std-of-means": "latents_std"}
# ltx_core Vocoder (AMP1 / BigVGAN-v2) -> diffusers LTX2Vocoder names, inside each of the two generators.
BWE_VOCODER_RENAMES = (
    (r"^(vocoder|bwe_generator)\.conv_pre\.", r"\1.conv_in."),
    (r"^(vocoder|bwe_generator)\.ups\.", r"\1.upsamplers."),
    (r"^(vocoder|bwe_generator)\.resblocks\.", r"\1.resnets."),
    (r"^(vocoder|bwe_generator)\.conv_post\.", r"\1.conv_out."),
    (r"^(vocoder|bwe_generator)\.act_post\.", r"\1.act_out."),
    (r"\.downsample\.lowpass\.filter$", ".downsample.filter"),
)


def _section(metadata: Mapping[str, str] | None, name: str) -> dict[str, Any]:
    raw = (metadata or {}).get("config")
    return dict(json.loads(raw).get(name, {})) if raw else {}


def _need(sd: Mapping[str, torch.Tensor], key: str, part: str) -> torch.Tensor:
    if key not in sd:
        raise CheckpointError(f"LTX-2 {part}: key {key!r} not found; is this an LTX-2 single-file checkpoint?")
    return sd[key]


def is_ltx23_video_vae(sd: Mapping[str, torch.Tensor]) -> bool:
    """The 2.3 decoder has a fourth upsampling stage (diffusers' ``up_blocks.3``)."""
    return any(k.startswith("decoder.up_blocks.3.") for k in sd)


def video_vae_kwargs(sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """LTX-2.0 or 2.3 video VAE architecture with widths scaled to the file's (tiny test files shrink them)."""
    arch = LTX23_VIDEO_VAE if is_ltx23_video_vae(sd) else {}
    with torch.device("meta"):
        reference = AutoencoderKLLTX2Video(**arch)  # class defaults = the LTX-2.0 release architecture
    ref = reference.state_dict()
    enc_key, dec_key = "encoder.mid_block.resnets.0.conv1.conv.weight", "decoder.conv_out.conv.weight"
    scale_e = _need(sd, enc_key, "video VAE").shape[0] / ref[enc_key].shape[0]
    scale_d = _need(sd, dec_key, "video VAE").shape[1] / ref[dec_key].shape[1]
    cfg = reference.config
    return dict(
        arch,
        latent_channels=_need(sd, "decoder.conv_in.conv.weight", "video VAE").shape[1],
        block_out_channels=tuple(int(c * scale_e) for c in cfg.block_out_channels),
        decoder_block_out_channels=tuple(int(c * scale_d) for c in cfg.decoder_block_out_channels),
        timestep_conditioning=any(k.startswith("decoder.time_embedder") for k in sd),
    )


def audio_vae_kwargs(sd: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None) -> dict[str, Any]:
    cfg = _section(metadata, "audio_vae")
    params = cfg.get("model", {}).get("params", {})
    dd = params.get("ddconfig", {})
    stft = cfg.get("preprocessing", {}).get("stft", {})
    base = _need(sd, "encoder.conv_in.conv.weight", "audio VAE").shape[0]
    kwargs = dict(
        base_channels=dd.get("ch", base),
        output_channels=dd.get("out_ch", 2),
        in_channels=dd.get("in_channels", 2),
        ch_mult=tuple(dd.get("ch_mult", (1, 2, 4))),
        num_res_blocks=dd.get("num_res_blocks", 2),
        latent_channels=dd.get("z_channels", 8),
        mel_bins=dd.get("mel_bins", 64),
        sample_rate=params.get("sampling_rate", 16000),
        mel_hop_length=stft.get("hop_length", 160),
        is_causal=stft.get("causal", True),
        mid_block_add_attention=any(".mid.attn_1." in k for k in sd),
    )
    if kwargs["base_channels"] != base:
        raise CheckpointError(f"LTX-2 audio VAE: config ch={kwargs['base_channels']} but weights have {base}")
    return kwargs


def vocoder_kwargs(sd: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None) -> dict[str, Any]:
    cfg = _section(metadata, "vocoder")  # ltx_core VocoderConfigurator names
    conv_in = _need(sd, "conv_in.weight", "vocoder")
    n_up = len({k.split(".")[1] for k in sd if k.startswith("upsamplers.")})
    kernels = [sd[f"upsamplers.{i}.weight"].shape[-1] for i in range(n_up)]
    return dict(
        in_channels=conv_in.shape[1],
        hidden_channels=cfg.get("upsample_initial_channel", conv_in.shape[0]),
        out_channels=2 if cfg.get("stereo", True) else 1,
        upsample_kernel_sizes=cfg.get("upsample_kernel_sizes", kernels),
        upsample_factors=cfg.get("upsample_rates", [6, 5, 2, 2, 2][:n_up]),
        resnet_kernel_sizes=cfg.get("resblock_kernel_sizes", [3, 7, 11]),
        resnet_dilations=cfg.get("resblock_dilation_sizes", [[1, 3, 5], [1, 3, 5], [1, 3, 5]]),
        output_sampling_rate=cfg.get("output_sample_rate", 24000),
    )


def _nested_block(match: re.Match) -> str:
    part, index = match.group(1), int(match.group(2))
    stage, resampler = divmod(index, 2)
    if part.startswith("encoder"):  # res, down, res, down, ..., res (mid)
        target = "encoder.mid_block" if index == 8 else f"encoder.down_blocks.{stage}" + (
            ".downsamplers.0" if resampler else "")
    else:  # res (mid), up, res, up, ..., res
        target = "decoder.mid_block" if index == 0 else f"decoder.up_blocks.{stage - 1 + resampler}" + (
            ".upsamplers.0" if resampler else "")
    return target + "."


def _ltx23_video_vae_state_dict(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in sd.items():
        key = key[len(VIDEO_VAE_PREFIX):]
        key = _STATS.get(key, key)
        out[_FLAT.sub(_nested_block, key).replace(".res_blocks.", ".resnets.")] = value
    return out


def video_vae_state_dict(checkpoint: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    sd = select(checkpoint, VIDEO_VAE_PREFIX, strip=False)
    if any(k.startswith(VIDEO_VAE_PREFIX + "decoder.up_blocks.7.") for k in sd):
        return _ltx23_video_vae_state_dict(sd)  # diffusers' single-file table stops at 2.0's up_blocks.6
    return convert_ltx2_vae_to_diffusers(dict(sd))


def audio_vae_state_dict(checkpoint: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    sd = select(checkpoint, AUDIO_VAE_PREFIX, strip=False)
    return convert_ltx2_audio_vae_to_diffusers(dict(sd))


def vocoder_state_dict(checkpoint: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # ltx_core strips one "vocoder." (model_configurator.py _strip_vocoder_prefix).
    sd = select(checkpoint, VOCODER_PREFIX)
    return rename_keys(sd, BWE_VOCODER_RENAMES if is_bwe_vocoder(sd) else VOCODER_RENAMES)


def is_bwe_vocoder(sd: Mapping[str, torch.Tensor]) -> bool:
    return any(k.startswith("bwe_generator.") for k in sd)


def _generator_kwargs(cfg: Mapping[str, Any], sd: Mapping[str, torch.Tensor], part: str) -> dict[str, Any]:
    """One AMP1 generator of ltx_core's VocoderWithBWE from its config section (vocoder.py L479-519)."""
    conv_in = _need(sd, f"{part}.conv_in.weight", "vocoder")
    for key, want in (("resblock", "AMP1"), ("activation", "snakebeta"), ("stereo", True)):
        if cfg.get(key, want) != want:
            raise CheckpointError(f"LTX-2.3 vocoder: {part} config {key}={cfg[key]!r} is not supported (expected {want!r})")
    n_up = len({k.split(".")[2] for k in sd if k.startswith(f"{part}.upsamplers.")})
    return dict(
        in_channels=conv_in.shape[1],
        hidden_channels=cfg.get("upsample_initial_channel", conv_in.shape[0]),
        out_channels=2,
        upsample_kernel_sizes=cfg.get("upsample_kernel_sizes", [sd[f"{part}.upsamplers.{i}.weight"].shape[-1]
                                                               for i in range(n_up)]),
        upsample_factors=cfg["upsample_rates"],
        resnet_kernel_sizes=cfg.get("resblock_kernel_sizes", [3, 7, 11]),
        resnet_dilations=cfg.get("resblock_dilation_sizes", [[1, 3, 5], [1, 3, 5], [1, 3, 5]]),
        act_fn="snakebeta", antialias=True,
        final_bias=bool(cfg.get("use_bias_at_final", False)),
    )


def bwe_vocoder_kwargs(sd: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None) -> dict[str, Any]:
    cfg = _section(metadata, "vocoder")
    if "vocoder" not in cfg or "bwe" not in cfg:
        raise CheckpointError("LTX-2.3 vocoder: the file's header config has no 'vocoder' / 'bwe' sections "
                              "(the bandwidth-extension sizes are not in the weights)")
    voc, bwe = cfg["vocoder"], cfg["bwe"]
    main, ext = _generator_kwargs(voc, sd, "vocoder"), _generator_kwargs(bwe, sd, "bwe_generator")
    # The 16 kHz stage ends in clamp(-1, 1) (apply_final_activation defaults on, use_tanh_at_final off);
    # the BWE generator has no final activation (VocoderConfigurator: apply_final_activation=False).
    # diffusers' 2.3 converter leaves the clamp out of the first stage.
    main["final_act_fn"] = ("tanh" if voc.get("use_tanh_at_final", True) else "clamp") \
        if voc.get("apply_final_activation", True) else None
    ext["final_act_fn"] = None
    return dict(
        main, **{f"bwe_{k}": v for k, v in ext.items()},
        filter_length=bwe["n_fft"], hop_length=bwe["hop_length"], window_length=bwe.get("win_size", bwe["n_fft"]),
        num_mel_channels=bwe["num_mels"], input_sampling_rate=bwe["input_sampling_rate"],
        output_sampling_rate=bwe["output_sampling_rate"],
    )


def load_video_vae(checkpoint, metadata=None, *, dtype=None) -> AutoencoderKLLTX2Video:
    sd = video_vae_state_dict(checkpoint)
    kw = video_vae_kwargs(sd)
    return build_and_load(lambda: AutoencoderKLLTX2Video(**kw), sd, context="LTX-2 video VAE", dtype=dtype).eval().requires_grad_(False)


def load_audio_vae(checkpoint, metadata=None, *, dtype=None) -> AutoencoderKLLTX2Audio:
    sd = audio_vae_state_dict(checkpoint)
    kw = audio_vae_kwargs(sd, metadata)
    return build_and_load(lambda: AutoencoderKLLTX2Audio(**kw), sd, context="LTX-2 audio VAE", dtype=dtype).eval().requires_grad_(False)


def load_vocoder(checkpoint, metadata=None, *, dtype=None) -> LTX2Vocoder | LTX2VocoderWithBWE:
    """The 24 kHz LTX-2.0 vocoder, or LTX-2.3's 16 kHz vocoder + bandwidth extension to 48 kHz
    (``.config.output_sampling_rate`` says which)."""
    sd = vocoder_state_dict(checkpoint)
    if is_bwe_vocoder(sd):
        kw = bwe_vocoder_kwargs(sd, metadata)
        # The sinc resampler is a non-persistent buffer: build it for real, not on the meta device.
        model = LTX2VocoderWithBWE(**kw)
        load_strict(model, sd, context="LTX-2.3 vocoder", dtype=dtype)
        return model.to(dtype=dtype).eval().requires_grad_(False) if dtype else model.eval().requires_grad_(False)
    kw = vocoder_kwargs(sd, metadata)
    return build_and_load(lambda: LTX2Vocoder(**kw), sd, context="LTX-2 vocoder", dtype=dtype).eval().requires_grad_(False)
