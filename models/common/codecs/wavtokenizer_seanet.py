"""SEANet encoder/decoder and the single-codebook quantiser used by WavTokenizer.

Module and attribute names follow the released checkpoint (``model.<i>.conv.conv.weight``,
``model.<i>.lstm.*``, ``vq.layers.0._codebook.embed``) so its ``state_dict`` loads as is
once weight norm has been folded (see :func:`..wavtokenizer.convert_wavtokenizer_state_dict`).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _extra_padding(length: int, kernel_size: int, stride: int, padding_total: int) -> int:
    # Encodec pads the end so the last window is full and a transposed conv rebuilds the length.
    n_frames = (length - kernel_size + padding_total) / stride + 1
    ideal_length = (math.ceil(n_frames) - 1) * stride + (kernel_size - padding_total)
    return ideal_length - length


def _pad1d(x: torch.Tensor, left: int, right: int, mode: str) -> torch.Tensor:
    if mode != "reflect":
        return F.pad(x, (left, right), mode=mode)
    # Reflect padding needs input longer than the pad: Encodec zero-extends first, then trims.
    length = x.shape[-1]
    max_pad = max(left, right)
    extra = max_pad - length + 1 if length <= max_pad else 0
    if extra:
        x = F.pad(x, (0, extra))
    padded = F.pad(x, (left, right), mode="reflect")
    return padded[..., : padded.shape[-1] - extra]


class _Conv(nn.Module):
    """Holds the conv as ``.conv`` so keys read ``<layer>.conv.conv.weight`` like Encodec's NormConv1d."""

    def __init__(self, conv: nn.Module):
        super().__init__()
        self.conv = conv


class _ConvTr(nn.Module):
    def __init__(self, convtr: nn.Module):
        super().__init__()
        self.convtr = convtr


class SConv1d(nn.Module):
    """Non-causal conv with Encodec's asymmetric 'same' padding (extra sample on the left)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, dilation: int = 1,
                 pad_mode: str = "reflect"):
        super().__init__()
        self.conv = _Conv(nn.Conv1d(in_ch, out_ch, kernel_size, stride, dilation=dilation))
        self.pad_mode = pad_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv.conv
        stride = conv.stride[0]
        kernel = (conv.kernel_size[0] - 1) * conv.dilation[0] + 1
        padding_total = kernel - stride
        extra = _extra_padding(x.shape[-1], kernel, stride, padding_total)
        right = padding_total // 2
        left = padding_total - right
        return conv(_pad1d(x, left, right + extra, self.pad_mode))


class SConvTranspose1d(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int):
        super().__init__()
        self.convtr = _ConvTr(nn.ConvTranspose1d(in_ch, out_ch, kernel_size, stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        convtr = self.convtr.convtr
        padding_total = convtr.kernel_size[0] - convtr.stride[0]
        y = convtr(x)
        right = padding_total // 2
        left = padding_total - right
        return y[..., left: y.shape[-1] - right]


class SLSTM(nn.Module):
    """LSTM over conv layout [B, C, T] with a skip connection (Encodec)."""

    def __init__(self, dim: int, num_layers: int):
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, num_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.lstm(x.permute(2, 0, 1))
        return y.permute(1, 2, 0) + x


class SEANetResnetBlock(nn.Module):
    def __init__(self, dim: int, kernel_size: int, dilation: int, compress: int, pad_mode: str):
        super().__init__()
        hidden = dim // compress
        self.block = nn.Sequential(
            nn.ELU(alpha=1.0),
            SConv1d(dim, hidden, kernel_size, dilation=dilation, pad_mode=pad_mode),
            nn.ELU(alpha=1.0),
            SConv1d(hidden, dim, 1, pad_mode=pad_mode),
        )
        # WavTokenizer sets true_skip=False: the skip path is a 1x1 conv.
        self.shortcut = SConv1d(dim, dim, 1, pad_mode=pad_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.block(x)


class SEANetEncoder(nn.Module):
    """Waveform [B, 1, N] -> features [B, dimension, N / prod(ratios)]."""

    def __init__(self, *, dimension: int, n_filters: int, ratios: Sequence[int], channels: int = 1,
                 n_residual_layers: int = 1, kernel_size: int = 7, last_kernel_size: int = 7,
                 residual_kernel_size: int = 3, dilation_base: int = 2, compress: int = 2, lstm: int = 2,
                 pad_mode: str = "reflect"):
        super().__init__()
        # ``ratios`` are given decoder-order, as in Encodec; the encoder walks them reversed.
        self.ratios = list(reversed(list(ratios)))
        self.hop_length = int(math.prod(self.ratios))
        mult = 1
        layers: list[nn.Module] = [SConv1d(channels, n_filters, kernel_size, pad_mode=pad_mode)]
        for ratio in self.ratios:
            for j in range(n_residual_layers):
                layers.append(SEANetResnetBlock(mult * n_filters, residual_kernel_size, dilation_base ** j,
                                                compress, pad_mode))
            layers += [nn.ELU(alpha=1.0),
                       SConv1d(mult * n_filters, mult * n_filters * 2, ratio * 2, stride=ratio, pad_mode=pad_mode)]
            mult *= 2
        if lstm:
            layers.append(SLSTM(mult * n_filters, lstm))
        layers += [nn.ELU(alpha=1.0), SConv1d(mult * n_filters, dimension, last_kernel_size, pad_mode=pad_mode)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class SEANetDecoder(nn.Module):
    """Encodec's waveform decoder. Stored in WavTokenizer checkpoints but unused at inference
    (the Vocos backbone + ISTFT head decode); kept so the file loads strictly."""

    def __init__(self, *, dimension: int, n_filters: int, ratios: Sequence[int], channels: int = 1,
                 n_residual_layers: int = 1, kernel_size: int = 7, last_kernel_size: int = 7,
                 residual_kernel_size: int = 3, dilation_base: int = 2, compress: int = 2, lstm: int = 2,
                 pad_mode: str = "reflect"):
        super().__init__()
        self.ratios = list(ratios)
        mult = 2 ** len(self.ratios)
        layers: list[nn.Module] = [SConv1d(dimension, mult * n_filters, kernel_size, pad_mode=pad_mode)]
        if lstm:
            layers.append(SLSTM(mult * n_filters, lstm))
        for ratio in self.ratios:
            layers += [nn.ELU(alpha=1.0),
                       SConvTranspose1d(mult * n_filters, mult * n_filters // 2, ratio * 2, ratio)]
            for j in range(n_residual_layers):
                layers.append(SEANetResnetBlock(mult * n_filters // 2, residual_kernel_size, dilation_base ** j,
                                                compress, pad_mode))
            mult //= 2
        layers += [nn.ELU(alpha=1.0), SConv1d(n_filters, channels, last_kernel_size, pad_mode=pad_mode)]
        self.model = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model(z)


class EuclideanCodebook(nn.Module):
    """One VQ codebook; the EMA statistics are buffers of the released file, unused at inference."""

    def __init__(self, dim: int, codebook_size: int):
        super().__init__()
        self.register_buffer("inited", torch.ones(1))
        self.register_buffer("cluster_size", torch.zeros(codebook_size))
        self.register_buffer("embed", torch.randn(codebook_size, dim))
        self.register_buffer("embed_avg", torch.zeros(codebook_size, dim))

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """[N, D] -> nearest code index [N]; same expression as Encodec so ties break identically."""
        embed = self.embed.t()
        dist = -(x.pow(2).sum(1, keepdim=True) - 2 * x @ embed + embed.pow(2).sum(0, keepdim=True))
        return dist.max(dim=-1).indices


class VectorQuantization(nn.Module):
    def __init__(self, dim: int, codebook_size: int):
        super().__init__()
        self._codebook = EuclideanCodebook(dim, codebook_size)


class ResidualVQ(nn.Module):
    def __init__(self, dim: int, codebook_size: int, num_quantizers: int = 1):
        super().__init__()
        self.layers = nn.ModuleList(VectorQuantization(dim, codebook_size) for _ in range(num_quantizers))


class ResidualVectorQuantizer(nn.Module):
    """WavTokenizer always runs one quantiser (n_q=1 in ``infer``), whatever the bandwidth."""

    def __init__(self, dim: int, bins: int, num_quantizers: int = 1):
        super().__init__()
        self.bins = bins
        self.vq = ResidualVQ(dim, bins, num_quantizers)

    @property
    def codebook(self) -> torch.Tensor:
        return self.vq.layers[0]._codebook.embed

    def encode(self, emb: torch.Tensor) -> torch.Tensor:
        """[B, D, T] -> codes [1, B, T] (quantiser-first, as the reference returns them)."""
        b, d, t = emb.shape
        flat = emb.transpose(1, 2).reshape(b * t, d)
        idx = self.vq.layers[0]._codebook.quantize(flat)
        return idx.view(1, b, t)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [1, B, T] (or [B, T]) -> features [B, D, T]."""
        if codes.dim() == 2:
            codes = codes.unsqueeze(0)
        return F.embedding(codes[0], self.codebook).transpose(1, 2)
