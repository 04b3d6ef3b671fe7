"""BigVGAN vocoders: v1 16 kHz (MMAudio/Ovi ``best_netG.pt``) and NVIDIA v2 (e.g. 44 kHz 128-band 512x).

Blocks (anti-aliased SnakeBeta activations, AMP residual blocks) are diffusers' MMAudio vocoder
parts, whose parameter and filter-buffer names are those of the released generators. The
generator itself is written here because v1 differs from diffusers' v2-only class: v1 has a
``conv_post`` bias and ends in tanh, v2 has neither and clamps to [-1, 1].
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Mapping

import torch
from diffusers.models.autoencoders.mmaudio_vocoder import MMAudioActivation1d, MMAudioAMPBlock
from torch import nn

from ..checkpoint import CheckpointError, build_and_load, fold_weight_norm, select


@dataclass(frozen=True)
class BigVGANConfig:
    num_mels: int = 80
    upsample_initial_channel: int = 1536
    upsample_rates: tuple[int, ...] = (4, 4, 2, 2, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (8, 8, 4, 4, 4, 4)
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    use_bias_at_final: bool = True
    use_tanh_at_final: bool = True
    sample_rate: int = 16_000

    @property
    def hop_length(self) -> int:
        hop = 1
        for r in self.upsample_rates:
            hop *= r
        return hop


# MMAudio ext/bigvgan/bigvgan_vocoder.yml (BigVGAN v1, hop 256).
BIGVGAN_V1_16K = BigVGANConfig()
# NVIDIA BigVGAN configs/bigvgan_v2_44khz_128band_512x.json.
BIGVGAN_V2_44K = BigVGANConfig(
    num_mels=128,
    upsample_rates=(8, 4, 2, 2, 2, 2),
    upsample_kernel_sizes=(16, 8, 4, 4, 4, 4),
    use_bias_at_final=False,
    use_tanh_at_final=False,
    sample_rate=44_100,
)


class BigVGAN(nn.Module):
    """Mel [B, num_mels, N] -> waveform [B, 1, N * hop_length] in [-1, 1]."""

    def __init__(self, config: BigVGANConfig = BIGVGAN_V1_16K):
        super().__init__()
        if len(config.upsample_rates) != len(config.upsample_kernel_sizes):
            raise ValueError("upsample_rates and upsample_kernel_sizes must have the same length")
        self.config = config
        self.num_kernels = len(config.resblock_kernel_sizes)
        ch = config.upsample_initial_channel
        self.conv_pre = nn.Conv1d(config.num_mels, ch, 7, padding=3)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        for rate, k in zip(config.upsample_rates, config.upsample_kernel_sizes):
            # One-element lists: the released files name these ``ups.{i}.0``.
            self.ups.append(nn.ModuleList([nn.ConvTranspose1d(ch, ch // 2, k, rate, padding=(k - rate) // 2)]))
            ch //= 2
            for rk, dil in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes):
                self.resblocks.append(MMAudioAMPBlock(ch, rk, tuple(dil)))
        self.activation_post = MMAudioActivation1d(ch)
        self.conv_post = nn.Conv1d(ch, 1, 7, padding=3, bias=config.use_bias_at_final)

    def forward(self, mel: torch.Tensor, callback: Callable[[int, int], None] | None = None) -> torch.Tensor:
        x = self.conv_pre(mel.to(self.conv_pre.weight.dtype))
        total = len(self.ups)
        for i, up in enumerate(self.ups):
            x = up[0](x)
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            x = sum(block(x) for block in blocks) / self.num_kernels
            if callback is not None:
                callback(i + 1, total)
        x = self.conv_post(self.activation_post(x))
        return torch.tanh(x) if self.config.use_tanh_at_final else x.clamp(-1.0, 1.0)


def convert_checkpoint(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A generator state dict (``best_netG.pt`` / ``bigvgan_generator.pt``, optionally under
    ``generator.``) with weight norm split as saved -> plain folded weights."""
    if any(k.startswith("generator.") for k in sd):
        sd = select(sd, "generator.")
    if "conv_pre.weight_g" not in sd and "conv_pre.weight" not in sd and not any(
        k.startswith("conv_pre.parametrizations.") for k in sd
    ):
        raise CheckpointError("BigVGAN: no conv_pre weights; is this a BigVGAN generator file?")
    # ConvTranspose weights are [in, out, k] and are normalised over dim 0 too (torch weight_norm default).
    return fold_weight_norm(sd, dim=0)


# (mels, hop, v1?) -> rate of the released generators: MMAudio v1 16k; NVIDIA v1 24k; NVIDIA v2
# 22k/24k/44k. NVIDIA's v1 22 kHz 80-band file has the MMAudio 16k layout: pass sample_rate for it.
_RELEASED_RATES = {
    (80, 256, True): 16_000,
    (100, 256, True): 24_000,
    (80, 256, False): 22_050,
    (100, 256, False): 24_000,
    (128, 256, False): 44_100,
    (128, 512, False): 44_100,
}


def _released_sample_rate(num_mels: int, kernels: tuple[int, ...], v1: bool) -> int:
    hop = 1
    for k in kernels:
        hop *= k // 2
    return _RELEASED_RATES.get((num_mels, hop, v1), 16_000 if v1 else 44_100)


def config_from_state_dict(sd: Mapping[str, torch.Tensor], **overrides) -> BigVGANConfig:
    """Sizes from the (folded) weight shapes.

    Upsample rates are not stored; every released BigVGAN uses kernel = 2 * rate (v1 16k:
    8,8,4,4,4,4 / 4,4,2,2,2,2; v2 44k: 16,8,4,4,4,4 / 8,4,2,2,2,2), so rate = kernel // 2 unless
    given. Dilations (1,3,5) are those of every released config. v1 files have a conv_post bias
    and end in tanh; v2 files have neither (``use_bias_at_final``/``use_tanh_at_final`` false).
    """
    pre = sd["conv_pre.weight"]
    ups = sorted({int(m.group(1)) for k in sd if (m := re.match(r"ups\.(\d+)\.0\.weight$", k))})
    kernels = tuple(int(sd[f"ups.{i}.0.weight"].shape[2]) for i in ups)
    per_stage = len({int(m.group(1)) for k in sd if (m := re.match(r"resblocks\.(\d+)\.", k))}) // max(len(ups), 1)
    res_kernels = tuple(int(sd[f"resblocks.{j}.convs1.0.weight"].shape[2]) for j in range(per_stage))
    has_bias = "conv_post.bias" in sd
    values = dict(
        num_mels=int(pre.shape[1]),
        upsample_initial_channel=int(pre.shape[0]),
        upsample_rates=tuple(k // 2 for k in kernels),
        upsample_kernel_sizes=kernels,
        resblock_kernel_sizes=res_kernels,
        resblock_dilation_sizes=tuple((1, 3, 5) for _ in res_kernels),
        use_bias_at_final=has_bias,
        use_tanh_at_final=has_bias,
        sample_rate=_released_sample_rate(int(pre.shape[1]), kernels, has_bias),
    )
    values.update(overrides)
    return BigVGANConfig(**values)


def load_bigvgan(
    sd: Mapping[str, torch.Tensor], *, dtype: torch.dtype | None = None, context: str = "BigVGAN", **overrides
) -> BigVGAN:
    """Fold the weight norm, build the generator the weights describe, and load strictly."""
    sd = convert_checkpoint(sd)
    config = config_from_state_dict(sd, **overrides)
    model = build_and_load(lambda: BigVGAN(config), sd, context=context, dtype=dtype)
    return model.eval().requires_grad_(False)


__all__ = ["BigVGAN", "BigVGANConfig", "BIGVGAN_V1_16K", "BIGVGAN_V2_44K", "config_from_state_dict",
           "convert_checkpoint", "load_bigvgan"]
