"""Tiny random MMAudio codec files (mel-VAE and BigVGAN) in their released layouts, for tests and benchmarks."""
from __future__ import annotations

from pathlib import Path

import torch

# MMAudio's 16 kHz codec pair at the smallest sizes its layouts allow (BigVGAN halves 64 channels 6 times).
MEL_VAE_16K = dict(mel_bins=80, latent_channels=20, hidden_channels=8, channel_multipliers=(1, 2), layers_per_block=1)
BIGVGAN_TINY = dict(upsample_initial_channel=64, resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1, 3, 5),))


def mel_vae_state_dict(scale: float = 1.0, seed: int | None = None, **config) -> dict[str, torch.Tensor]:
    """A released-layout MMAudio mel-VAE state dict (raw weights, log10-mel statistics, zero gains)."""
    from ..models.common.codecs.mmaudio_vae import MelVAE, MelVAEConfig

    if seed is not None:
        torch.manual_seed(seed)
    vae = MelVAE(MelVAEConfig(**{**MEL_VAE_16K, **config}))
    sd = {k: torch.randn_like(v) * scale for k, v in vae.state_dict().items()}
    sd["data_mean"] = torch.full_like(sd["data_mean"], -4.0)  # log10-mel statistics look like this
    sd["data_std"] = torch.full_like(sd["data_std"], 1.5)
    sd["encoder.learnable_gain"] = torch.tensor(0.0)
    sd["decoder.learnable_gain"] = torch.tensor(0.0)
    return sd


def bigvgan_generator_state_dict(seed: int | None = None, **config) -> dict[str, torch.Tensor]:
    """A BigVGAN generator state dict with weight-normed convs (``weight_g``/``weight_v``) as released."""
    from ..models.common.codecs.bigvgan import BigVGAN, BigVGANConfig

    if seed is not None:
        torch.manual_seed(seed)
    sd = {}
    for k, v in BigVGAN(BigVGANConfig(**{**BIGVGAN_TINY, **config})).state_dict().items():
        if k.endswith("filter"):
            sd[k] = v
        elif k.endswith(".weight"):
            base = k[: -len(".weight")]
            sd[base + ".weight_g"] = torch.full((v.shape[0], 1, 1), 0.5)
            sd[base + ".weight_v"] = torch.randn_like(v)
        else:
            sd[k] = torch.randn_like(v) * 0.05
    return sd


def write_codec_files(folder: Path) -> None:
    """``v1-16.pth`` and ``best_netG.pt`` as MMAudio releases them, tiny and random."""
    torch.manual_seed(0)
    torch.save(mel_vae_state_dict(scale=0.3), folder / "v1-16.pth")
    torch.save({"generator": bigvgan_generator_state_dict()}, folder / "best_netG.pt")
