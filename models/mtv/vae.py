"""CogVideoX VAE (diffusers ``AutoencoderKLCogVideoX``): loading from a diffusers-layout file,
chunk decoding to frames, and the re-encoding that carries a chunk's tail into the next chunk."""
from __future__ import annotations

from typing import Mapping

import torch
from diffusers import AutoencoderKLCogVideoX

from ..common.checkpoint import CheckpointError, load_strict, meta_device

SCALING_FACTOR = 0.7  # CogVideoX-5B VAE config / MTV yaml scale_factor


def vae_config_from_state_dict(sd: Mapping[str, torch.Tensor]) -> dict:
    if "decoder.conv_in.conv.weight" not in sd:
        hint = " (SAT '3d-vae.pt' naming: use the diffusers-format CogVideoX VAE file)" if any(
            k.startswith("encoder.down.") for k in sd) else ""
        raise CheckpointError(f"not a diffusers CogVideoX VAE: no decoder.conv_in.conv.weight{hint}")
    n_blocks = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("encoder.down_blocks."))
    widths = tuple(sd[f"encoder.down_blocks.{i}.resnets.0.conv2.conv.weight"].shape[0] for i in range(n_blocks))
    layers = 1 + max(int(k.split(".")[4]) for k in sd if k.startswith("encoder.down_blocks.0.resnets."))
    return dict(
        in_channels=sd["encoder.conv_in.conv.weight"].shape[1],
        out_channels=sd["decoder.conv_out.conv.weight"].shape[0],
        latent_channels=sd["decoder.conv_in.conv.weight"].shape[1],
        down_block_types=("CogVideoXDownBlock3D",) * n_blocks,
        up_block_types=("CogVideoXUpBlock3D",) * n_blocks,
        block_out_channels=widths,
        layers_per_block=layers,
        norm_num_groups=min(32, widths[0] // 2),  # 32 in the real VAE (widths from 128)
        scaling_factor=SCALING_FACTOR,
        temporal_compression_ratio=4,
        use_quant_conv="quant_conv.weight" in sd,
        use_post_quant_conv="post_quant_conv.weight" in sd,
    )


def load_cogvideox_vae(sd: Mapping[str, torch.Tensor], dtype: torch.dtype | None = None) -> AutoencoderKLCogVideoX:
    sd = {k[len("vae."):] if k.startswith("vae.") else k: v for k, v in sd.items()}
    cfg = vae_config_from_state_dict(sd)
    with meta_device():
        vae = AutoencoderKLCogVideoX(**cfg)
    load_strict(vae, sd, context="CogVideoX VAE", dtype=dtype, assign=True)
    return vae.eval().requires_grad_(False)


@torch.no_grad()
def decode_frames(vae: AutoencoderKLCogVideoX, latents: torch.Tensor) -> torch.Tensor:
    """[1, T, C, h, w] model latents -> [F, H, W, 3] frames in 0..1."""
    p = next(vae.parameters())
    z = latents.permute(0, 2, 1, 3, 4).to(p) / vae.config.scaling_factor
    video = vae.decode(z).sample[0].float()  # [3, F, H, W] in -1..1
    return ((video + 1) / 2).clamp(0, 1).permute(1, 2, 3, 0).cpu()


@torch.no_grad()
def encode_frames(vae: AutoencoderKLCogVideoX, frames: torch.Tensor, generator: torch.Generator | None = None):
    """[F, H, W, 3] frames in 0..1 -> [1, T, C, h, w] scaled latents (sampled, as the official
    ``encode_first_stage`` does)."""
    p = next(vae.parameters())
    x = (frames.permute(3, 0, 1, 2)[None] * 2 - 1).to(p)
    dist = vae.encode(x).latent_dist
    noise = torch.randn(dist.mean.shape, generator=generator).to(dist.mean)
    z = dist.mean + dist.std * noise
    return (z * vae.config.scaling_factor).permute(0, 2, 1, 3, 4).float()


def reencode_tail(vae: AutoencoderKLCogVideoX, overlap_frames: int = 5, seed: int = 0):
    """The official carry: decode a chunk, re-encode its last frames as the next chunk's clean latents."""
    generator = torch.Generator().manual_seed(seed)

    def carry(latents: torch.Tensor) -> torch.Tensor:
        frames = decode_frames(vae, latents)
        return encode_frames(vae, frames[-overlap_frames:], generator)

    return carry
