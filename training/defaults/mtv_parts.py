"""The parts of the MTV tiny default around the denoiser: a CogVideoX-layout video VAE trained on the world's
frames (Ovi's recipe: ovi_parts' background-weighted L1 and frame crops, another network class), a frozen random
wav2vec2 in the Hugging Face Wav2Vec2ForCTC layout, and a frozen random T5-v1.1-layout text encoder with a
word-level tokenizer of the world's prompts.

The pack's CogVideoX VAE loader fixes the latent scale (``models/mtv/vae.py`` SCALING_FACTOR, CogVideoX-5B's
0.7) and samples the posterior (``encode_frames``, as the official ``encode_first_stage``). The tiny VAE is
trained on posterior means, so after training its posterior is made deterministic and its latents unit-scale
by folding both into the weights (``normalise_latents``): what the strict loader reads then needs no config.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

LOGVAR_FLOOR = -30.0  # diffusers DiagonalGaussianDistribution clamps logvar to [-30, 20]: std 3e-7


def tiny_vae_config(latent_channels: int, widths: tuple[int, ...]) -> dict:
    """AutoencoderKLCogVideoX sizes as the pack's loader reads them back from the weights
    (``vae_config_from_state_dict``): 4 blocks (8x spatial), 4x temporal, one resnet per block."""
    from ...models.mtv.vae import SCALING_FACTOR

    return dict(in_channels=3, out_channels=3, latent_channels=latent_channels,
                down_block_types=("CogVideoXDownBlock3D",) * len(widths),
                up_block_types=("CogVideoXUpBlock3D",) * len(widths), block_out_channels=tuple(widths),
                layers_per_block=1, norm_num_groups=min(32, widths[0] // 2), scaling_factor=SCALING_FACTOR,
                temporal_compression_ratio=4, use_quant_conv=False, use_post_quant_conv=False)


def new_cogvideox_vae(config: dict, seed: int):
    from diffusers import AutoencoderKLCogVideoX

    torch.manual_seed(seed)
    return AutoencoderKLCogVideoX(**config)


@torch.no_grad()
def posterior_means(vae, clips: list[np.ndarray]) -> torch.Tensor:
    """[N, C, T, h, w] unscaled posterior means of whole clips (uint8 [T, H, W, 3] each)."""
    from .ovi_parts import to_pixels

    vae.eval()
    return torch.cat([vae.encode(to_pixels(c)[None]).latent_dist.mean for c in clips])


@torch.no_grad()
def normalise_latents(vae, clips: list[np.ndarray]) -> dict:
    """Fold into the weights (1) a deterministic posterior: the encoder's logvar outputs become the constant
    LOGVAR_FLOOR, so the loader's sampled encode is the mean the DiT was trained on; (2) a per-channel scale c
    making ``mean * SCALING_FACTOR`` unit-std on the training clips. Exact: every decoder input of the latent
    (its conv_in and the spatial norms' conv_y / conv_b) is a linear conv of it, whose weights take 1 / c."""
    from ...models.mtv.vae import SCALING_FACTOR

    enc_out = vae.encoder.conv_out.conv
    ch = vae.config.latent_channels
    enc_out.weight[ch:] = 0
    enc_out.bias[ch:] = LOGVAR_FLOOR
    std = posterior_means(vae, clips).transpose(0, 1).flatten(1).std(dim=1).clamp_min(1e-4)
    c = 1.0 / (SCALING_FACTOR * std)  # [C]
    enc_out.weight[:ch] *= c.view(-1, 1, 1, 1, 1)
    enc_out.bias[:ch] *= c
    readers = [vae.decoder.conv_in.conv] + [m.conv for name, m in vae.decoder.named_modules()
                                            if name.endswith(("conv_y", "conv_b")) and hasattr(m, "conv")]
    for conv in readers:
        conv.weight /= c.view(1, -1, 1, 1, 1)
    z = posterior_means(vae, clips) * SCALING_FACTOR
    return {"scale": [round(float(v), 4) for v in c], "latent_std": round(float(z.std()), 3),
            "latent_mean": round(float(z.mean()), 3)}


def save_cogvideox_vae(vae, path: Path) -> Path:
    """diffusers AutoencoderKLCogVideoX layout (what ``load_cogvideox_vae`` reads strictly), fp16."""
    from safetensors.torch import save_file

    save_file({k: v.detach().half().contiguous() for k, v in vae.state_dict().items()}, str(path))
    return path


# -- wav2vec2 ------------------------------------------------------------------------------------------------
def new_wav2vec(hidden: int, layers: int, conv_dim: int, seed: int):
    """A tiny Wav2Vec2Model with base's CNN strides (320x: 50 feature frames per second at 16 kHz) and post-norm
    encoder, sizes the pack's loader reads back from the shapes (heads: one per 64 wide, at least one)."""
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(seed)
    cfg = Wav2Vec2Config(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=max(1, hidden // 64),
                         intermediate_size=2 * hidden, conv_dim=[conv_dim] * 7, conv_stride=[5, 2, 2, 2, 2, 2, 2],
                         conv_kernel=[10, 3, 3, 3, 3, 2, 2], conv_bias=False, feat_extract_norm="group",
                         num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, do_stable_layer_norm=False)
    return Wav2Vec2Model(cfg).eval().requires_grad_(False)


def save_wav2vec(model, path: Path) -> Path:
    """Hugging Face Wav2Vec2ForCTC key layout (``wav2vec2.`` prefix, weight norm as weight_g / weight_v), fp16:
    the layout of facebook/wav2vec2-base-960h's model.safetensors, which the features node reads."""
    from safetensors.torch import save_file

    names = {".parametrizations.weight.original0": ".weight_g", ".parametrizations.weight.original1": ".weight_v"}
    out = {}
    for k, v in model.state_dict().items():  # masked_spec_embed included: base-960h's file holds it too
        for a, b in names.items():
            k = k.replace(a, b)
        out["wav2vec2." + k] = v.detach().half().contiguous()
    save_file(out, str(path))
    return path


# -- text ----------------------------------------------------------------------------------------------------
def new_t5(vocab: int, d_model: int, seed: int):
    """A tiny T5EncoderModel in T5-v1.1's design (gated GELU FFN, relative attention in the first layer)."""
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    cfg = T5Config(vocab_size=vocab, d_model=d_model, d_kv=d_model // 2, d_ff=2 * d_model, num_layers=1,
                   num_heads=2, relative_attention_num_buckets=32, feed_forward_proj="gated-gelu",
                   layer_norm_epsilon=1e-6)
    return T5EncoderModel(cfg).eval().requires_grad_(False)


def save_t5(model, path: Path) -> Path:
    """HF T5 encoder layout (``shared.weight`` + ``encoder.*``, as t5xxl_fp16.safetensors), fp16."""
    from safetensors.torch import save_file

    sd = {k: v.detach().half().contiguous() for k, v in model.state_dict().items() if k != "encoder.embed_tokens.weight"}
    save_file(sd, str(path))
    return path


def tokenizer_path(encoder: Path) -> Path:
    """Where ``models.mtv.text.find_tokenizer`` looks beside an encoder file: ``<name>.tokenizer.json``."""
    return encoder.with_suffix(".tokenizer.json")


__all__ = ["LOGVAR_FLOOR", "new_cogvideox_vae", "new_t5", "new_wav2vec", "normalise_latents", "posterior_means",
           "save_cogvideox_vae", "save_t5", "save_wav2vec", "tiny_vae_config", "tokenizer_path"]
