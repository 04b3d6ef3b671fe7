"""A tiny AudioGen-Omni MMDiT (random weights) for tests and the README's runnable examples."""
from __future__ import annotations

import torch

from ..models.audiogen_omni.mmdit import MMDiT, MMDiTConfig


def tiny_mmdit(seed: int = 0, **overrides) -> MMDiT:
    torch.manual_seed(seed)
    cfg = MMDiTConfig(latent_dim=8, clip_dim=12, sync_dim=10, text_dim=16, hidden_dim=32, depth=3, fused_depth=1,
                      num_heads=2, text_seq_len=6, v2=True, latent_seq_len=20, clip_seq_len=8, sync_seq_len=16,
                      sample_rate=1000, samples_per_latent=100, lyrics_dim=24, lyrics_vocab=40, lyrics_blocks=2,
                      timing_seconds=5).replace(**overrides)
    net = MMDiT(cfg).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.15)  # no zero layers, so every condition reaches the output
    return net
