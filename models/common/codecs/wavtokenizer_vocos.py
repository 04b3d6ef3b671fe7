"""WavTokenizer's decoder side: Vocos ConvNeXt backbone with AdaLayerNorm and an attention
``pos_net``, followed by an ISTFT head with "same" padding (WavTokenizer decoder/models.py,
decoder/heads.py, decoder/spectral_ops.py)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..attention import attention


def _swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


def _group_norm(channels: int, groups: int) -> nn.GroupNorm:
    # The reference hard-codes 32 groups, eps 1e-6 (taming-transformers style Normalize).
    return nn.GroupNorm(groups, channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm1 = _group_norm(channels, groups)
        self.conv1 = nn.Conv1d(channels, channels, 3, padding=1)
        self.norm2 = _group_norm(channels, groups)
        self.conv2 = nn.Conv1d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(_swish(self.norm1(x)))
        h = self.conv2(_swish(self.norm2(h)))  # dropout 0.1 in training only
        return x + h


class AttnBlock(nn.Module):
    """Single-head self-attention over time with 1x1-conv projections."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = _group_norm(channels, groups)
        self.q = nn.Conv1d(channels, channels, 1)
        self.k = nn.Conv1d(channels, channels, 1)
        self.v = nn.Conv1d(channels, channels, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        q, k, v = (proj(h).transpose(1, 2).unsqueeze(1) for proj in (self.q, self.k, self.v))
        out = attention(q, k, v).squeeze(1).transpose(1, 2)
        return x + self.proj_out(out)


class AdaLayerNorm(nn.Module):
    """LayerNorm whose scale/shift rows are picked by a bandwidth id (row 0 at inference)."""

    def __init__(self, num_embeddings: int, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.dim = dim
        self.scale = nn.Embedding(num_embeddings, dim)
        self.shift = nn.Embedding(num_embeddings, dim)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, cond_id: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x, (self.dim,), eps=self.eps)
        return x * self.scale(cond_id) + self.shift(cond_id)


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int, intermediate_dim: int, layer_scale: float, adanorm_num_embeddings: int):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, 7, padding=3, groups=dim)
        self.norm = AdaLayerNorm(adanorm_num_embeddings, dim)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor, cond_id: torch.Tensor) -> torch.Tensor:
        h = self.dwconv(x).transpose(1, 2)
        h = self.pwconv2(F.gelu(self.pwconv1(self.norm(h, cond_id))))
        return x + (self.gamma * h).transpose(1, 2)


class VocosBackbone(nn.Module):
    """Features [B, C_in, T] -> hidden [B, T, dim]."""

    def __init__(self, input_channels: int, dim: int, intermediate_dim: int, num_layers: int,
                 adanorm_num_embeddings: int = 4, norm_groups: int = 32):
        super().__init__()
        self.embed = nn.Conv1d(input_channels, dim, 7, padding=3)
        self.norm = AdaLayerNorm(adanorm_num_embeddings, dim)
        self.convnext = nn.ModuleList(
            ConvNeXtBlock(dim, intermediate_dim, 1.0 / num_layers, adanorm_num_embeddings) for _ in range(num_layers)
        )
        self.final_layer_norm = nn.LayerNorm(dim, eps=1e-6)
        self.pos_net = nn.Sequential(
            ResnetBlock(dim, norm_groups), ResnetBlock(dim, norm_groups), AttnBlock(dim, norm_groups),
            ResnetBlock(dim, norm_groups), ResnetBlock(dim, norm_groups), _group_norm(dim, norm_groups),
        )

    def forward(self, x: torch.Tensor, bandwidth_id: torch.Tensor) -> torch.Tensor:
        x = self.pos_net(self.embed(x))
        x = self.norm(x.transpose(1, 2), bandwidth_id).transpose(1, 2)
        for block in self.convnext:
            x = block(x, bandwidth_id)
        return self.final_layer_norm(x.transpose(1, 2))


class ISTFT(nn.Module):
    """Inverse STFT with "same" padding (torch.istft only supports centre padding with NOLA checks)."""

    def __init__(self, n_fft: int, hop_length: int):
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.register_buffer("window", torch.hann_window(n_fft))

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        win, hop = self.n_fft, self.hop_length
        pad = (win - hop) // 2
        frames = spec.shape[-1]
        window = self.window.float()  # fp32 whatever the module's dtype: CPU FFTs take no fp16
        ifft = torch.fft.irfft(spec, win, dim=1, norm="backward") * window[None, :, None]
        out_len = (frames - 1) * hop + win
        y = F.fold(ifft, output_size=(1, out_len), kernel_size=(1, win), stride=(1, hop))[:, 0, 0, pad:-pad]
        env = window.square().expand(1, frames, -1).transpose(1, 2)
        env = F.fold(env, output_size=(1, out_len), kernel_size=(1, win), stride=(1, hop)).squeeze()[pad:-pad]
        return y / env


class ISTFTHead(nn.Module):
    """hidden [B, T, dim] -> waveform [B, hop*T]: log-magnitude and phase per bin."""

    def __init__(self, dim: int, n_fft: int, hop_length: int):
        super().__init__()
        self.out = nn.Linear(dim, n_fft + 2)
        self.istft = ISTFT(n_fft, hop_length)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mag, phase = self.out(x).float().transpose(1, 2).chunk(2, dim=1)  # the spectrum and ISTFT in fp32
        mag = torch.clip(torch.exp(mag), max=1e2)  # reference safeguard against huge magnitudes
        return self.istft(mag * (torch.cos(phase) + 1j * torch.sin(phase)))
