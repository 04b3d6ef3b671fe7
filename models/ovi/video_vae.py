"""Wan2.2 video VAE (z=48, 16x spatial / 4x temporal) through diffusers ``AutoencoderKLWan``.

Latents are normalised per channel with Wan2.2's statistics (wan/modules/vae2_2.py): the model
sees ``(mu - mean) / std``; decoding undoes it. Weights: Wan's own ``Wan2.2_VAE.pth`` layout (renamed
by one table) or diffusers' layout; config from the file's metadata when present, else Wan2.2's.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import torch

from ..common.checkpoint import CheckpointError, build_and_load, load_file, rename_keys, safetensors_metadata

# Wan2.2 VAE latent statistics (Wan2_2_VAE in wan/modules/vae2_2.py, also Ovi's copy).
WAN22_MEAN = (
    -0.2289, -0.0052, -0.1323, -0.2339, -0.2799, 0.0174, 0.1838, 0.1557, -0.1382, 0.0542, 0.2813, 0.0891,
    0.1570, -0.0098, 0.0375, -0.1825, -0.2246, -0.1207, -0.0698, 0.5109, 0.2665, -0.2108, -0.2158, 0.2502,
    -0.2055, -0.0322, 0.1109, 0.1567, -0.0729, 0.0899, -0.2799, -0.1230, -0.0313, -0.1649, 0.0117, 0.0723,
    -0.2839, -0.2083, -0.0520, 0.3748, 0.0152, 0.1957, 0.1433, -0.2944, 0.3573, -0.0548, -0.1681, -0.0667,
)
WAN22_STD = (
    0.4765, 1.0364, 0.4514, 1.1677, 0.5313, 0.4990, 0.4818, 0.5013, 0.8158, 1.0344, 0.5894, 1.0901,
    0.6885, 0.6165, 0.8454, 0.4978, 0.5759, 0.3523, 0.7135, 0.6804, 0.5833, 1.4146, 0.8986, 0.5659,
    0.7069, 0.5338, 0.4889, 0.4917, 0.4069, 0.4999, 0.6866, 0.4093, 0.5709, 0.6065, 0.6415, 0.4944,
    0.5726, 1.2042, 0.5458, 1.6887, 0.3971, 1.0600, 0.3943, 0.5537, 0.5444, 0.4089, 0.7468, 0.7744,
)

# Wan2.2-TI2V-5B VAE (diffusers vae/config.json).
WAN22_CONFIG = dict(base_dim=160, decoder_base_dim=256, z_dim=48, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                    attn_scales=[], temperal_downsample=[False, True, True], is_residual=True, in_channels=12,
                    out_channels=12, patch_size=2, scale_factor_spatial=16, scale_factor_temporal=4,
                    latents_mean=list(WAN22_MEAN), latents_std=list(WAN22_STD))


# Wan's own layout (Wan2.2_VAE.pth, as Ovi downloads it) -> diffusers names; applied in order.
# Kept ours: diffusers' convert_wan_vae_to_diffusers maps Wan 2.1's flat down/upsample lists, not Wan2.2's
# nested residual blocks (on a Wan2.2 file it gives 160 keys for the model's 196, 94 under names it lacks).
WAN_VAE_TO_DIFFUSERS = (
    (r"^conv1\.", "quant_conv."),
    (r"^conv2\.", "post_quant_conv."),
    (r"^(en|de)coder\.conv1\.", r"\1coder.conv_in."),
    (r"^(en|de)coder\.head\.0\.", r"\1coder.norm_out."),
    (r"^(en|de)coder\.head\.2\.", r"\1coder.conv_out."),
    (r"^(en|de)coder\.middle\.0\.", r"\1coder.mid_block.resnets.0."),
    (r"^(en|de)coder\.middle\.1\.", r"\1coder.mid_block.attentions.0."),
    (r"^(en|de)coder\.middle\.2\.", r"\1coder.mid_block.resnets.1."),
    (r"^encoder\.downsamples\.(\d+)\.downsamples\.\d+\.(resample|time_conv)", r"encoder.down_blocks.\1.downsampler.\2"),
    (r"^encoder\.downsamples\.(\d+)\.downsamples\.(\d+)\.", r"encoder.down_blocks.\1.resnets.\2."),
    (r"^decoder\.upsamples\.(\d+)\.upsamples\.\d+\.(resample|time_conv)", r"decoder.up_blocks.\1.upsampler.\2"),
    (r"^decoder\.upsamples\.(\d+)\.upsamples\.(\d+)\.", r"decoder.up_blocks.\1.resnets.\2."),
    (r"\.residual\.0\.", ".norm1."),
    (r"\.residual\.2\.", ".conv1."),
    (r"\.residual\.3\.", ".norm2."),
    (r"\.residual\.6\.", ".conv2."),
    (r"\.shortcut\.", ".conv_shortcut."),
)


def to_diffusers_layout(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Either layout -> AutoencoderKLWan names (Wan's original naming is recognised by ``decoder.conv1``)."""
    if "decoder.conv1.weight" in sd:
        return rename_keys(sd, WAN_VAE_TO_DIFFUSERS)
    return dict(sd)


def config_from_state_dict(sd: Mapping[str, torch.Tensor]) -> dict:
    """AutoencoderKLWan sizes read from diffusers-layout weights (Wan2.2 defaults for the rest)."""
    base = sd["encoder.conv_in.weight"].shape[0]
    n_down = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("encoder.down_blocks."))
    dim_mult = [sd[f"encoder.down_blocks.{i}.resnets.0.conv2.weight"].shape[0] // base for i in range(n_down)]
    res_blocks = 1 + max(int(k.split(".")[4]) for k in sd if k.startswith("encoder.down_blocks.0.resnets."))
    in_ch = sd["encoder.conv_in.weight"].shape[1]
    patch = round((in_ch / 3) ** 0.5)
    return dict(
        base_dim=base,
        decoder_base_dim=sd["decoder.conv_out.weight"].shape[1] // dim_mult[0],
        z_dim=sd["post_quant_conv.weight"].shape[0],
        dim_mult=dim_mult,
        num_res_blocks=res_blocks,
        temperal_downsample=[f"encoder.down_blocks.{i}.downsampler.time_conv.weight" in sd for i in range(n_down - 1)],
        in_channels=in_ch,
        out_channels=sd["decoder.conv_out.weight"].shape[0],
        patch_size=patch if patch > 1 else None,
        scale_factor_spatial=2 ** (n_down - 1) * max(patch, 1),
    )


def build_wan_vae(**overrides):
    from diffusers import AutoencoderKLWan

    cfg = {**WAN22_CONFIG, **overrides}
    return AutoencoderKLWan(**cfg)


def load_wan_vae(source, *, config: dict | None = None, dtype: torch.dtype | None = None):
    """A Wan2.2 VAE from a diffusers-layout file (config from metadata ``config`` or Wan2.2 defaults)."""
    meta = {}
    if isinstance(source, (str, Path)):
        if str(source).endswith(".safetensors"):
            meta = safetensors_metadata(source)
        sd = load_file(source)
    else:
        sd = dict(source)
    sd = to_diffusers_layout(sd)
    if "decoder.conv_in.weight" not in sd:
        raise CheckpointError("Wan VAE: neither Wan's layout (Wan2.2_VAE.pth) nor diffusers' AutoencoderKLWan")
    cfg = config_from_state_dict(sd)
    cfg.update(config or json.loads(meta.get("config", "{}")) or {})
    vae = build_and_load(lambda: build_wan_vae(**cfg), sd, context="Wan2.2 VAE", dtype=dtype)
    return vae.eval().requires_grad_(False)


def _stats(vae, like: torch.Tensor):
    c = vae.config
    mean = torch.tensor(c.latents_mean, dtype=like.dtype, device=like.device).view(1, -1, 1, 1, 1)
    std = torch.tensor(c.latents_std, dtype=like.dtype, device=like.device).view(1, -1, 1, 1, 1)
    return mean, std


@torch.no_grad()
def decode_video(vae, latent: torch.Tensor) -> torch.Tensor:
    """Normalised latent [B, z, F, H, W] -> frames [B, T, H*16, W*16, 3] in 0..1 (float32)."""
    p = next(vae.parameters())
    z = latent.to(device=p.device, dtype=p.dtype)
    mean, std = _stats(vae, z)
    video = vae.decode(z * std + mean).sample.float().clamp(-1, 1)
    return ((video + 1) / 2).permute(0, 2, 3, 4, 1).cpu()


@torch.no_grad()
def encode_video(vae, frames: torch.Tensor) -> torch.Tensor:
    """Frames [B, T, H, W, 3] in 0..1 (T = 1 + 4k) -> normalised latent [B, z, 1 + (T - 1) / 4, H/16, W/16]
    (posterior mean, as Wan encodes)."""
    p = next(vae.parameters())
    x = (frames.to(device=p.device, dtype=p.dtype) * 2 - 1).permute(0, 4, 1, 2, 3)
    mu = vae.encode(x).latent_dist.mode()
    mean, std = _stats(vae, mu)
    return ((mu - mean) / std).float().cpu()


def encode_image(vae, image: torch.Tensor) -> torch.Tensor:
    """Image [B, H, W, 3] in 0..1 -> normalised latent [B, z, 1, H/16, W/16] (posterior mean, as Wan)."""
    return encode_video(vae, image[:, None])


def last_frame_reencoder(vae):
    """``reencode`` for models/ovi/long_clip.sample_ovi_long: decode the previous chunk's latents up to the
    carried frame and encode the last decoded frame as a still image, the one clean frame i2v training
    conditions on (a later latent frame holds 4 frames; the first latent frame of a chunk, a single image)."""
    @torch.no_grad()
    def reencode(latents: torch.Tensor) -> torch.Tensor:  # [C, F, H, W] -> [C, 1, H, W]
        frames = decode_video(vae, latents[None])
        return encode_image(vae, frames[:, -1])[0].to(device=latents.device, dtype=latents.dtype)
    return reencode
