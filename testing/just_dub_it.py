"""Tiny random LTX-2 checkpoints in the native single-file layout, for tests, benchmarks and
headless example runs (the same loader path as the released file)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..models.just_dub_it.config import LTX2_19B_NATIVE_CONFIG, diffusers_transformer_kwargs
from ..models.just_dub_it.transformer import build_transformer, diffusers_to_native_key, transformer_state_dict

TINY_NATIVE_CONFIG: dict[str, Any] = {
    **LTX2_19B_NATIVE_CONFIG,
    "num_attention_heads": 2, "attention_head_dim": 8, "cross_attention_dim": 16, "num_layers": 2,
    "caption_channels": 24, "audio_num_attention_heads": 2, "audio_attention_head_dim": 4,
    "audio_cross_attention_dim": 8,
    # Not in ltx_core configs (it hard-codes 30 x 128); lets tiny files shrink the text connectors.
    "connector_num_attention_heads": 2, "connector_attention_head_dim": 12,
    "connector_positional_embedding_max_pos": [16],
}
TINY_TEXT = dict(layers=2, registers=8, max_tokens=16, vocab=["<pad>", "<eos>", "<bos>", "<unk>"])

def native_key(key: str) -> str:
    return diffusers_to_native_key(key)


def random_native_checkpoint(native_config: dict[str, Any] | None = None, seed: int = 0):
    """(state dict with native keys, metadata) for a randomly initialised transformer."""
    native_config = dict(TINY_NATIVE_CONFIG if native_config is None else native_config)
    torch.manual_seed(seed)
    model = build_transformer(diffusers_transformer_kwargs(native_config))
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, v in model.state_dict().items():
        # Non-zero everywhere so every parameter matters (the reference zero-inits some layers).
        scale = 0.1 if "scale_shift" in k else (v.shape[-1] ** -0.5 if v.dim() == 2 else 0.05)
        base = 1.0 if k.endswith(("norm_q.weight", "norm_k.weight")) else 0.0
        sd[native_key(k)] = base + scale * torch.randn(v.shape, generator=g)
    roundtrip = transformer_state_dict(dict(sd))
    assert set(roundtrip) == set(model.state_dict()), "native key table out of date"
    return sd, {"config": json.dumps({"transformer": native_config})}


def write_tiny_checkpoint(path: str | Path, seed: int = 0, native_config: dict[str, Any] | None = None) -> Path:
    from safetensors.torch import save_file

    sd, meta = random_native_checkpoint(native_config, seed)
    path = Path(path)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path), metadata=meta)
    return path


# ---- codecs -----------------------------------------------------------------------------------

# Native flat block indices of the video VAE (ltx_core) for diffusers' nested names.
_VAE_ENCODER_BLOCKS = {
    "down_blocks.0.downsamplers.0": "down_blocks.1", "down_blocks.1.downsamplers.0": "down_blocks.3",
    "down_blocks.2.downsamplers.0": "down_blocks.5", "down_blocks.3.downsamplers.0": "down_blocks.7",
    "down_blocks.0": "down_blocks.0", "down_blocks.1": "down_blocks.2", "down_blocks.2": "down_blocks.4",
    "down_blocks.3": "down_blocks.6", "mid_block": "down_blocks.8",
}
_VAE_DECODER_BLOCKS = {
    "up_blocks.0.upsamplers.0": "up_blocks.1", "up_blocks.1.upsamplers.0": "up_blocks.3",
    "up_blocks.2.upsamplers.0": "up_blocks.5", "up_blocks.0": "up_blocks.2", "up_blocks.1": "up_blocks.4",
    "up_blocks.2": "up_blocks.6", "mid_block": "up_blocks.0",
}
_STATS = {"latents_mean": "per_channel_statistics.mean-of-means", "latents_std": "per_channel_statistics.std-of-means"}
_VOCODER = {"conv_in": "conv_pre", "upsamplers": "ups", "resnets": "resblocks", "conv_out": "conv_post"}


def _native_video_vae_key(key: str) -> str:
    if key in _STATS:
        return "vae." + _STATS[key]
    part, _, rest = key.partition(".")
    table = _VAE_ENCODER_BLOCKS if part == "encoder" else _VAE_DECODER_BLOCKS
    for diff, native in sorted(table.items(), key=lambda kv: -len(kv[0])):
        if rest.startswith(diff + "."):
            rest = native + rest[len(diff):]
            break
    return f"vae.{part}.{rest.replace('resnets', 'res_blocks')}"


def _randomise(sd, g, prefix_fn):
    out = {}
    for k, v in sd.items():
        if k.endswith("latents_std"):
            t = 0.5 + torch.rand(v.shape, generator=g)
        elif v.dim() <= 1:
            t = 0.02 * torch.randn(v.shape, generator=g)
        else:
            t = torch.randn(v.shape, generator=g) / max(1, v[0].numel()) ** 0.5
        out[prefix_fn(k)] = t
    return out


TINY_VIDEO_VAE = dict(block_out_channels=(8, 16, 32, 64), decoder_block_out_channels=(8, 16, 32))
TINY_AUDIO_VAE = dict(base_channels=8)
# Real upsampling (240x: 10 ms mel frames -> 24 kHz) so tiny outputs have real durations.
TINY_VOCODER = dict(hidden_channels=32, upsample_kernel_sizes=[16, 15, 8, 4, 4], upsample_factors=[6, 5, 2, 2, 2],
                    resnet_kernel_sizes=[3], resnet_dilations=[[1, 3]], output_sampling_rate=24000)


def random_native_codecs(seed: int = 0) -> tuple[dict[str, torch.Tensor], dict]:
    """Tiny video VAE, audio VAE and vocoder under the native ``vae.`` / ``audio_vae.`` / ``vocoder.`` keys."""
    from diffusers import AutoencoderKLLTX2Audio, AutoencoderKLLTX2Video
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder

    from ..models.just_dub_it.codecs import audio_vae_state_dict, video_vae_state_dict, vocoder_state_dict

    g = torch.Generator().manual_seed(seed)
    video = AutoencoderKLLTX2Video(**TINY_VIDEO_VAE)
    audio = AutoencoderKLLTX2Audio(**TINY_AUDIO_VAE)
    vocoder = LTX2Vocoder(in_channels=audio.config.output_channels * audio.config.mel_bins, **TINY_VOCODER)
    sd = {}
    sd.update(_randomise(video.state_dict(), g, _native_video_vae_key))
    sd.update(_randomise(audio.state_dict(), g, lambda k: "audio_vae." + _STATS.get(k, k)))
    sd.update(_randomise(vocoder.state_dict(), g, lambda k: "vocoder." + _VOCODER.get(k.split(".")[0], k.split(".")[0]) + k[len(k.split(".")[0]):]))
    for part, model, convert in (("video VAE", video, video_vae_state_dict), ("audio VAE", audio, audio_vae_state_dict),
                                 ("vocoder", vocoder, vocoder_state_dict)):
        assert set(convert(sd)) == set(model.state_dict()), f"tiny {part}: native key table out of date"
    stft = {"hop_length": 160, "filter_length": 1024, "causal": True}
    cfg = {
        "audio_vae": {"model": {"params": {"sampling_rate": 16000, "ddconfig": {"ch": 8, "mel_bins": 64, "z_channels": 8}}},
                      "preprocessing": {"stft": stft}},
        "vocoder": {"upsample_initial_channel": 32, "upsample_rates": [6, 5, 2, 2, 2], "upsample_kernel_sizes": [16, 15, 8, 4, 4],
                    "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3]], "output_sample_rate": 24000},
    }
    return sd, cfg


# ---- text -------------------------------------------------------------------------------------

def _native_connector_key(key: str) -> str:
    if key.startswith("text_proj_in."):
        return "text_embedding_projection.aggregate_embed." + key[len("text_proj_in."):]
    stream, _, rest = key.partition("_connector.")
    rest = rest.replace("transformer_blocks.", "transformer_1d_blocks.").replace(".norm_q.", ".q_norm.").replace(".norm_k.", ".k_norm.")
    return f"model.diffusion_model.{stream}_embeddings_connector.{rest}"


def random_native_connectors(native_config: dict[str, Any] | None = None, gemma_layers: int = 2, seed: int = 0):
    """Tiny text connectors + projection under their native single-file keys."""
    from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors

    from ..models.just_dub_it.text import connector_kwargs, connector_state_dict

    native_config = dict(TINY_NATIVE_CONFIG if native_config is None else native_config)
    meta = {"config": json.dumps({"transformer": native_config})}
    caption = native_config["caption_channels"]
    probe = {"text_proj_in.weight": torch.empty(caption, caption * (gemma_layers + 1)),
             "video_connector.learnable_registers": torch.empty(TINY_TEXT["registers"], caption)}
    probe.update({f"video_connector.transformer_blocks.{i}.x": torch.empty(0) for i in range(TINY_TEXT["layers"])})
    model = LTX2TextConnectors(**connector_kwargs(probe, meta))
    g = torch.Generator().manual_seed(seed)
    sd = _randomise(model.state_dict(), g, _native_connector_key)
    assert set(connector_state_dict(sd)) == set(model.state_dict()), "native connector key table out of date"
    return sd


def write_tiny_gemma(folder: str | Path, caption_channels: int = 24, seed: int = 0) -> Path:
    """A 2-layer random Gemma-3 text model with a word-level tokenizer, in Hugging Face layout."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import Gemma3TextConfig, Gemma3TextModel, PreTrainedTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    words = TINY_TEXT["vocab"] + [w for w in "a an the she he says speaks hello world in spanish english french german dub video voice man woman".split()]
    vocab = {w: i for i, w in enumerate(words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", unk_token="<unk>")
    fast.save_pretrained(str(folder))
    torch.manual_seed(seed)
    cfg = Gemma3TextConfig(vocab_size=len(words), hidden_size=caption_channels, intermediate_size=2 * caption_channels,
                           num_hidden_layers=TINY_TEXT["layers"], num_attention_heads=2, num_key_value_heads=1,
                           head_dim=caption_channels // 2, max_position_embeddings=64, sliding_window=8,
                           pad_token_id=0, eos_token_id=1, bos_token_id=2)
    Gemma3TextModel(cfg).save_pretrained(str(folder))
    return folder


def write_tiny_single_file(path: str | Path, seed: int = 0) -> Path:
    """Transformer + text connectors + video/audio VAE + vocoder in one native single file."""
    return save_single_file(path, random_native_checkpoint(seed=seed), random_native_codecs(seed),
                            random_native_connectors(seed=seed))


def save_single_file(path: str | Path, checkpoint: tuple[dict, dict], codecs: tuple[dict, dict], connectors: dict,
                     **metadata: str) -> Path:
    """One native single file as Lightricks ships it: every part's tensors, the config (transformer and
    codecs) in the header."""
    from safetensors.torch import save_file

    sd, meta = checkpoint
    codec_sd, codec_cfg = codecs
    config = {**json.loads(meta["config"]), **codec_cfg}
    path = Path(path)
    save_file({k: v.contiguous() for k, v in {**sd, **codec_sd, **connectors}.items()}, str(path),
              metadata={"config": json.dumps(config), **metadata})
    return path


def write_tiny_upsampler(path: str | Path, seed: int = 0) -> Path:
    """A one-block 2x latent upsampler with its native config in the safetensors metadata."""
    from diffusers.pipelines.ltx2.latent_upsampler import LTX2LatentUpsamplerModel
    from safetensors.torch import save_file

    native = {"in_channels": 128, "mid_channels": 32, "num_blocks_per_stage": 1, "dims": 3,
              "spatial_upsample": True, "temporal_upsample": False, "spatial_scale": 2.0, "rational_resampler": False}
    model = LTX2LatentUpsamplerModel(in_channels=128, mid_channels=32, num_blocks_per_stage=1, dims=3,
                                     use_rational_resampler=False)
    sd = _randomise(model.state_dict(), torch.Generator().manual_seed(seed), lambda k: k)
    path = Path(path)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path), metadata={"config": json.dumps(native)})
    return path
