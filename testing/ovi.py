"""Tiny random Ovi parts (fusion model, umt5, tokenizer) for tests, benchmarks and headless demos.

Same classes as the real models, small numbers. Weights are seeded and non-degenerate (no zero
layers), so a wiring error changes outputs.
"""
from __future__ import annotations

import torch
from torch import nn

from ..models.ovi.fusion import FusionConfig, OviFusion
from ..models.ovi.tower import audio_config, video_config
from .t5 import TINY_VOCAB, write_tiny_tokenizer  # noqa: F401  (re-exported for the tests)


def tiny_fusion_config(dim: int = 32, heads: int = 2, layers: int = 2, ffn: int = 64, freq_dim: int = 16,
                       text_len: int = 16, text_dim: int = 24) -> FusionConfig:
    common = dict(dim=dim, ffn_dim=ffn, freq_dim=freq_dim, num_heads=heads, num_layers=layers,
                  text_len=text_len, text_dim=text_dim)
    return FusionConfig(video=video_config(**common), audio=audio_config(**common))


def randomize_(module: nn.Module, seed: int = 0) -> nn.Module:
    """Matrices N(0, 1/fan_in), 1-D parameters 1 + N(0, 0.1^2) or N(0, 0.05^2), tables N(0, 0.1^2)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() >= 2 and "modulation" not in name:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in ** 0.5)
            elif "modulation" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            elif name.endswith("weight"):
                p.copy_(1 + torch.randn(p.shape, generator=g) * 0.1)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return module


def tiny_fusion(seed: int = 0, **kw) -> OviFusion:
    return randomize_(OviFusion(tiny_fusion_config(**kw)), seed).eval().requires_grad_(False)


def tiny_umt5_state_dict(d_model: int = 24, heads: int = 2, d_ff: int = 40, layers: int = 2, seed: int = 0,
                         wan_naming: bool = False) -> dict[str, torch.Tensor]:
    """Random umt5 encoder weights, in HF naming or Wan's ``.pth`` naming."""
    from transformers import UMT5Config, UMT5EncoderModel

    cfg = UMT5Config(vocab_size=len(TINY_VOCAB), d_model=d_model, d_kv=d_model // heads, d_ff=d_ff,
                     num_layers=layers, num_heads=heads, relative_attention_num_buckets=32,
                     feed_forward_proj="gated-gelu", dense_act_fn="gelu_new", is_gated_act=True)
    model = randomize_(UMT5EncoderModel(cfg), seed)
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    if not wan_naming:
        return sd
    out = {}
    for k, v in sd.items():
        if k == "encoder.embed_tokens.weight":
            continue
        out[_hf_to_wan(k)] = v
    return out


def _hf_to_wan(key: str) -> str:
    import re

    rules = (
        (r"^shared\.", "token_embedding."),
        (r"^encoder\.block\.(\d+)\.layer\.0\.layer_norm\.", r"blocks.\1.norm1."),
        (r"^encoder\.block\.(\d+)\.layer\.0\.SelfAttention\.relative_attention_bias\.", r"blocks.\1.pos_embedding.embedding."),
        (r"^encoder\.block\.(\d+)\.layer\.0\.SelfAttention\.", r"blocks.\1.attn."),
        (r"^encoder\.block\.(\d+)\.layer\.1\.layer_norm\.", r"blocks.\1.norm2."),
        (r"^encoder\.block\.(\d+)\.layer\.1\.DenseReluDense\.wi_0\.", r"blocks.\1.ffn.gate.0."),
        (r"^encoder\.block\.(\d+)\.layer\.1\.DenseReluDense\.wi_1\.", r"blocks.\1.ffn.fc1."),
        (r"^encoder\.block\.(\d+)\.layer\.1\.DenseReluDense\.wo\.", r"blocks.\1.ffn.fc2."),
        (r"^encoder\.final_layer_norm\.", "norm."),
    )
    for pat, rep in rules:
        key = re.sub(pat, rep, key)
    return key
