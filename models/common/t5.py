"""The one loader of T5-family text encoders from a state dict (MTV's T5-v1.1-XXL, Ovi's umt5-xxl):
sizes read from the weights, decoder and LM head dropped, tied embeddings filled, strict loading.

AudioGen-Omni's Flan-T5 comes as a Hugging Face folder instead and loads with ``from_pretrained``
(``models/audiogen_omni/text.py``); a single file in T5's layout (the pack's tiny default) loads here."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch

from .checkpoint import CheckpointError, drop_prefixes, load_file, load_strict


def encoder_state_dict(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """HF T5/UMT5 keys of the encoder only, with ``shared`` and ``encoder.embed_tokens`` both present."""
    sd = dict(drop_prefixes(sd, ("decoder.", "lm_head.")))
    if "shared.weight" not in sd and "encoder.embed_tokens.weight" in sd:
        sd["shared.weight"] = sd["encoder.embed_tokens.weight"]
    if "shared.weight" in sd:
        sd["encoder.embed_tokens.weight"] = sd["shared.weight"]
    return sd


def encoder_sizes(sd: Mapping[str, torch.Tensor], what: str) -> dict:
    """Config sizes read from encoder weights: vocab, width, layers, heads, buckets, head width, FFN width."""
    if "encoder.final_layer_norm.weight" not in sd:
        raise CheckpointError(f"not a {what} checkpoint (no encoder.final_layer_norm.weight)")
    vocab, d_model = sd["shared.weight"].shape
    layers = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("encoder.block."))
    buckets, heads = sd["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"].shape
    inner = sd["encoder.block.0.layer.0.SelfAttention.q.weight"].shape[0]
    gated = "encoder.block.0.layer.1.DenseReluDense.wi_0.weight" in sd
    d_ff = sd[f"encoder.block.0.layer.1.DenseReluDense.{'wi_0' if gated else 'wi'}.weight"].shape[0]
    return dict(vocab_size=vocab, d_model=d_model, d_kv=inner // heads, d_ff=d_ff, num_layers=layers,
                num_heads=heads, relative_attention_num_buckets=buckets, layer_norm_epsilon=1e-6), gated


def load_encoder(model_class, config, sd: Mapping[str, torch.Tensor], *, context: str,
                 dtype: torch.dtype | None = None, device="cpu"):
    """``model_class(config)`` built on the meta device and filled strictly from ``sd`` (no second copy)."""
    with torch.device("meta"):
        model = model_class(config)
    load_strict(model, sd, context=context, dtype=dtype, assign=True)
    return model.to(device).eval().requires_grad_(False)


def read_state_dict(source) -> dict[str, torch.Tensor]:
    return load_file(source) if isinstance(source, (str, Path)) else dict(source)


def t5_config_from_state_dict(sd: Mapping[str, torch.Tensor]):
    """T5-v1.1 encoder sizes from the weights (gated-GELU FFN, eps 1e-6, 32 buckets / 128 distance)."""
    from transformers import T5Config

    sizes, gated = encoder_sizes(sd, "T5 encoder")
    return T5Config(**sizes, feed_forward_proj="gated-gelu" if gated else "relu")


def load_t5_encoder(source, dtype: torch.dtype | None = None, device="cpu"):
    """transformers ``T5EncoderModel`` from an HF-layout state dict or file (strict)."""
    from transformers import T5EncoderModel

    sd = encoder_state_dict(read_state_dict(source))
    return load_encoder(T5EncoderModel, t5_config_from_state_dict(sd), sd, context="T5 text encoder",
                        dtype=dtype, device=device)
