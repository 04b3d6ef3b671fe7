"""Tiny DualDub models (random weights) for tests, benchmarks and the README's runnable examples."""
from __future__ import annotations

import torch

from ..models.common.codecs.wavtokenizer import WavTokenizer, WavTokenizerConfig
from ..models.dualdub.config import DualDubConfig
from ..models.dualdub.model import DualDub
from ..models.dualdub.text import train_bpe


def tiny_lm_config(hidden: int = 32, layers: int = 2, heads: int = 2, kv_heads: int = 1) -> dict:
    return {
        "model_type": "qwen2", "hidden_size": hidden, "num_hidden_layers": layers,
        "num_attention_heads": heads, "num_key_value_heads": kv_heads, "intermediate_size": hidden * 2,
        "max_position_embeddings": 4096, "rope_theta": 10000.0, "vocab_size": 1,
    }


def tiny_config(**overrides) -> DualDubConfig:
    base = dict(codebook_size=16, token_rate=25.0, text_vocab_size=300, video_dim=16, aligner_heads=2,
                speaker_dim=8, speaker_channels=16, speaker_heads=2, n_mels=16, lm=tiny_lm_config())
    base.update(overrides)
    return DualDubConfig(**base)


def tiny_codec(seed: int = 0) -> WavTokenizer:
    torch.manual_seed(seed)
    cfg = WavTokenizerConfig(dimension=8, n_filters=2, bins=16, backbone_dim=32, intermediate_dim=16, num_layers=1)
    return WavTokenizer(cfg).eval()


def tiny_dualdub(codec: WavTokenizer | None = None, seed: int = 0):
    """(DualDub, BPE tokenizer) matching ``codec``'s codebook and token rate."""
    codec = codec if codec is not None else tiny_codec(seed)
    tok = train_bpe(["look out the train is coming", "hello there"], vocab_size=280)
    torch.manual_seed(seed)
    cfg = tiny_config(codebook_size=codec.codebook_size, token_rate=codec.sample_rate / codec.hop_length,
                      text_vocab_size=tok.get_vocab_size())
    return DualDub(cfg).eval(), tok
