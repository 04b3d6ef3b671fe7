"""MMAudio's mel-spectrogram VAE (16 kHz: 80 mels -> 20 ch; 44.1 kHz: 128 mels -> 40 ch).

The network is diffusers' ``MMAudioAutoencoder``, whose state-dict names are exactly those of
MMAudio's ``v1-16.pth`` / ``v1-44.pth`` (``data_mean``, ``data_std``, ``encoder.*``, ``decoder.*``).
What this module adds: reading the sizes from the weights, the load-time folding of the
magnitude-preserving conv weights, and encode/decode with MMAudio's posterior conventions.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Mapping

import torch
from diffusers.models.autoencoders.autoencoder_mmaudio import MMAudioAutoencoder

from ..checkpoint import CheckpointError, build_and_load, select

# Released files store raw MP-conv weights; diffusers-format files (``vae.`` prefix) store them folded.
DIFFUSERS_PREFIX = "vae."
LOGVAR_RANGE = (-30.0, 20.0)  # mmaudio/model/utils/distributions.py clamps the log-variance to this


@dataclass(frozen=True)
class MelVAEConfig:
    mel_bins: int = 80
    latent_channels: int = 20
    hidden_channels: int = 384
    channel_multipliers: tuple[int, ...] = (1, 2, 4)
    layers_per_block: int = 2

    @property
    def mel_frames_per_latent(self) -> int:
        # One 2x temporal down/up-sampling (MMAudio vae.py: down_layers=[0]).
        return 2


# MMAudio ext/autoencoder/vae.py: VAE_16k and VAE_44k.
VAE_16K = MelVAEConfig(80, 20, 384)
VAE_44K = MelVAEConfig(128, 40, 512)


def config_from_state_dict(sd: Mapping[str, torch.Tensor]) -> MelVAEConfig:
    """Every size of the network, read from the weight shapes (works on meta tensors)."""
    try:
        conv_in = sd["encoder.conv_in.weight"]
        hidden, mel_bins = int(conv_in.shape[0]), int(conv_in.shape[1])
        latent = int(sd["decoder.conv_in.weight"].shape[1])
    except KeyError as exc:
        raise CheckpointError(f"MMAudio VAE: key {exc} not found; is this an MMAudio v1-16/v1-44 VAE file?") from exc
    levels = sorted({int(m.group(1)) for k in sd if (m := re.match(r"encoder\.down\.(\d+)\.", k))})
    blocks = {int(m.group(1)) for k in sd if (m := re.match(r"encoder\.down\.0\.block\.(\d+)\.", k))}
    if not levels or not blocks:
        raise CheckpointError("MMAudio VAE: no encoder.down.* blocks in the file")
    mults = tuple(int(sd[f"encoder.down.{i}.block.0.conv1.weight"].shape[0]) // hidden for i in levels)
    return MelVAEConfig(mel_bins, latent, hidden, mults, len(blocks))


def fold_mp_weights(sd: Mapping[str, torch.Tensor], eps: float = 1e-4) -> dict[str, torch.Tensor]:
    """Bake MMAudio's magnitude-preserving normalisation into the conv weights.

    ``MPConv1D.remove_weight_norm`` (MMAudio ext/autoencoder/edm2_utils.py): each output filter is
    scaled to unit RMS-norm over fan_in (with eps 1e-4), then by 1/sqrt(fan_in). Only 3-D conv
    weights are touched; ``data_mean``/``data_std`` and the scalar gains stay as stored.
    """
    out = {}
    for k, w in sd.items():
        if k.startswith(("encoder.", "decoder.")) and k.endswith(".weight") and w.dim() == 3:
            fan_in = w.shape[1] * w.shape[2]
            w32 = w.float()
            norm = torch.linalg.vector_norm(w32, dim=(1, 2), keepdim=True)
            w32 = w32 / (eps + norm / math.sqrt(fan_in)) / math.sqrt(fan_in)
            out[k] = w32.to(w.dtype)
        else:
            out[k] = w
    return out


def convert_checkpoint(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Released MMAudio VAE file (raw MP weights) or diffusers ``MMAudioVAE`` weights -> our layout."""
    if any(k.startswith(DIFFUSERS_PREFIX + "encoder.") for k in sd):
        # diffusers' MPConv applies its weight as is, so its files already hold folded weights.
        return select(sd, DIFFUSERS_PREFIX)
    if any(k.startswith("encoder.") for k in sd):
        return fold_mp_weights(sd)
    raise CheckpointError("MMAudio VAE: found neither encoder.* nor vae.encoder.* keys")


class MelVAE(MMAudioAutoencoder):
    """Mel spectrogram [B, mel_bins, 2T] <-> latent [B, latent_channels, T]; keys as in ``v1-16.pth``."""

    def __init__(self, config: MelVAEConfig = VAE_16K):
        super().__init__(
            config.mel_bins,
            config.latent_channels,
            config.hidden_channels,
            tuple(config.channel_multipliers),
            config.layers_per_block,
        )
        self.config = config

    def encode(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior ``(mean, logvar)`` of a (log-)mel [B, mel_bins, F]; F must be even."""
        step = self.config.mel_frames_per_latent
        if mel.shape[-1] % step:
            raise ValueError(f"mel frame count {mel.shape[-1]} must be a multiple of {step}")
        mean, logvar = super().encode(mel.to(self.data_mean.dtype)).chunk(2, dim=1)
        return mean, logvar.clamp(*LOGVAR_RANGE)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Un-normalised (log-)mel [B, mel_bins, 2T] of a latent [B, latent_channels, T]."""
        return super().decode(latent.to(self.data_mean.dtype))

    @staticmethod
    def sample(mean: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + torch.exp(0.5 * logvar) * noise


def load_mel_vae(
    sd: Mapping[str, torch.Tensor], *, dtype: torch.dtype | None = None, context: str = "MMAudio VAE"
) -> MelVAE:
    """Build the VAE the weights describe and load them strictly (peak memory: one copy)."""
    sd = convert_checkpoint(sd)
    config = config_from_state_dict(sd)
    vae = build_and_load(lambda: MelVAE(config), sd, context=context, dtype=dtype)
    return vae.eval().requires_grad_(False)


__all__ = [
    "MelVAE", "MelVAEConfig", "VAE_16K", "VAE_44K", "config_from_state_dict", "convert_checkpoint",
    "fold_mp_weights", "load_mel_vae",
]
