"""Tiny random MTV parts (denoiser, wav2vec2, CogVideoX VAE) for tests, benchmarks and headless demos.

Same classes as the real models, small numbers; seeded non-degenerate weights (the official
zero-initialised music adaLN is made non-zero so that a wiring error changes outputs).
"""
from __future__ import annotations

import torch
from torch import nn

from ..models.mtv.audio_modules import MSTConfig
from ..models.mtv.transformer import BackboneConfig, MTVTransformer
from .t5 import write_tiny_tokenizer  # noqa: F401  (re-exported for the tests)


def randomize_(module: nn.Module, seed: int = 0) -> nn.Module:
    """Matrices N(0, 1/fan_in), norm weights 1 + N(0, 0.1^2), biases and tables N(0, 0.05^2)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() >= 2 and "pos_embedding" not in name:
                p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)
            elif name.endswith("weight"):
                p.copy_(1 + torch.randn(p.shape, generator=g) * 0.1)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
        for name, b in module.named_buffers():
            if name.endswith("pos_embedding"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.05)
    return module


def tiny_configs(
    *, hidden: int = 32, heads: int = 2, layers: int = 2, latent_channels: int = 4, latent_hw: tuple[int, int] = (4, 6),
    text_length: int = 8, text_dim: int = 16, wav2vec_layers: int = 2, wav2vec_width: int = 16, multi_person: bool = False,
) -> tuple[BackboneConfig, MSTConfig]:
    bb = BackboneConfig(
        num_layers=layers, num_heads=heads, head_dim=hidden // heads, in_channels=2 * latent_channels,
        out_channels=latent_channels, time_embed_dim=24, text_embed_dim=text_dim, text_length=text_length,
        latent_height=latent_hw[0], latent_width=latent_hw[1],
    )
    au = MSTConfig(
        num_layers=layers, hidden_size=hidden, num_heads=heads, time_embed_dim=24, token_width=32, audio_heads=2,
        context_tokens=4, proj_in_dim=5 * wav2vec_layers * wav2vec_width, proj_hidden=24, num_dual_blocks=2,
        multi_person=multi_person,
    )
    return bb, au


def tiny_mtv(seed: int = 0, **kw) -> MTVTransformer:
    return randomize_(MTVTransformer(*tiny_configs(**kw)), seed).eval().requires_grad_(False)


def tiny_vae_config() -> dict:
    """``AutoencoderKLCogVideoX`` kwargs: 8x spatial, 4x temporal, like the real VAE, 16 latent channels
    reduced to 4."""
    return dict(
        in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=("CogVideoXDownBlock3D",) * 4, up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(4, 4, 4, 4), layers_per_block=1, norm_num_groups=2, scaling_factor=0.7,
        temporal_compression_ratio=4,
    )


def tiny_t5_state_dict(d_model: int = 16, heads: int = 2, d_ff: int = 32, layers: int = 2, vocab: int = 64,
                       seed: int = 0) -> dict:
    """HF ``T5EncoderModel`` (v1.1 gated-GELU) weights at tiny size."""
    from transformers import T5Config, T5EncoderModel

    cfg = T5Config(vocab_size=vocab, d_model=d_model, d_kv=d_model // heads, d_ff=d_ff, num_layers=layers,
                   num_heads=heads, feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6)
    torch.manual_seed(seed)
    sd = T5EncoderModel(cfg).state_dict()
    return {k: v.clone() for k, v in sd.items() if k != "encoder.embed_tokens.weight"}  # tied to shared


def tiny_wav2vec_ctc_state_dict(hidden: int = 64, layers: int = 2, seed: int = 0) -> dict:
    """Wav2Vec2ForCTC-layout weights (``wav2vec2.`` prefix, weight_g/weight_v) at tiny size."""
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    cfg = Wav2Vec2Config(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=max(1, hidden // 64),
                         intermediate_size=2 * hidden, conv_dim=[8] * 7, num_conv_pos_embeddings=8,
                         num_conv_pos_embedding_groups=2)
    torch.manual_seed(seed)
    sd = Wav2Vec2Model(cfg).state_dict()
    rename = {".parametrizations.weight.original0": ".weight_g", ".parametrizations.weight.original1": ".weight_v"}
    out = {}
    for k, v in sd.items():
        for a, b in rename.items():
            k = k.replace(a, b)
        out["wav2vec2." + k] = v.contiguous()
    return out
