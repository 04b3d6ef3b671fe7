"""Hybrid Transformer Demucs (Demucs v4, Rouard et al. 2023), the network of MVSEP-CDX23.

A spectral U-Net (complex-as-channels STFT, convolutions over frequency) and a temporal U-Net run
side by side; at their bottoms a cross-domain transformer alternates self-attention within each
branch with cross-attention between them, and the two decoders' outputs are summed. Module and
parameter names follow ``demucs.htdemucs.HTDemucs`` so a package's ``state`` loads strictly;
every size comes from the package's ``kwargs`` (:class:`HTDemucsConfig`).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, fields
from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import nn

from ..common.attention import attention, merge_heads, split_heads

# HTDemucs arguments that only shape training or initialisation: accepted, no effect here.
TRAINING_ONLY = (
    "end_iters", "wiener_residual", "emb_smooth", "dconv_init", "rescale", "t_dropout", "t_weight_decay",
    "t_lr", "t_cape_augment", "t_cape_glob_loc_scale", "t_mask_type", "t_mask_random_seed",
    "t_sparse_attn_window", "t_global_window", "t_sparsity", "t_auto_sparsity",
    # demucs draws a random sinusoid shift even at eval when this is > 0; inference here uses shift 0.
    "t_sin_random_shift",
)


@dataclass
class HTDemucsConfig:
    """``demucs.htdemucs.HTDemucs`` constructor arguments that change inference (same defaults)."""

    sources: list[str]
    audio_channels: int = 2
    channels: int = 48
    channels_time: int | None = None
    growth: int = 2
    nfft: int = 4096
    wiener_iters: int = 0
    cac: bool = True
    depth: int = 4
    rewrite: bool = True
    multi_freqs: list | None = None
    multi_freqs_depth: int = 3
    freq_emb: float = 0.2
    emb_scale: float = 10
    kernel_size: int = 8
    time_stride: int = 2
    stride: int = 4
    context: int = 1
    context_enc: int = 0
    norm_starts: int = 4
    norm_groups: int = 4
    dconv_mode: int = 1
    dconv_depth: int = 2
    dconv_comp: float = 8
    bottom_channels: int = 0
    t_layers: int = 5
    t_emb: str = "sin"
    t_hidden_scale: float = 4.0
    t_heads: int = 8
    t_max_positions: int = 10000
    t_norm_in: bool = True
    t_norm_in_group: bool = False
    t_group_norm: bool = False
    t_norm_first: bool = True
    t_norm_out: bool = True
    t_max_period: float = 10000.0
    t_layer_scale: bool = True
    t_gelu: bool = True
    t_weight_pos_embed: float = 1.0
    t_cape_mean_normalize: bool = True
    t_sparse_self_attn: bool = False
    t_sparse_cross_attn: bool = False
    t_cross_first: bool = False
    samplerate: int = 44100
    segment: float | Fraction = 10
    use_train_segment: bool = True

    @classmethod
    def from_kwargs(cls, kwargs: dict, *, context: str = "HTDemucs") -> "HTDemucsConfig":
        """Like ``demucs.states.load_model(strict=False)``: unknown arguments are dropped with a warning."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(k for k in kwargs if k not in known and k not in TRAINING_ONLY)
        if unknown:
            warnings.warn(f"{context}: dropping arguments HTDemucs does not take: {unknown}", stacklevel=2)
        cfg = cls(**{k: v for k, v in kwargs.items() if k in known})
        cfg.check_supported(context)
        return cfg

    def check_supported(self, context: str) -> None:
        unsupported = []
        if not self.cac:
            unsupported.append("cac=False (Wiener-filtered magnitude masks)")
        if self.multi_freqs:
            unsupported.append(f"multi_freqs={self.multi_freqs} (MultiWrap frequency bands)")
        if self.t_sparse_self_attn or self.t_sparse_cross_attn:
            unsupported.append("sparse transformer attention (xformers kernels)")
        if self.t_emb not in ("sin", "cape", "scaled"):
            unsupported.append(f"t_emb={self.t_emb!r}")
        if unsupported:
            raise ValueError(f"{context}: unsupported HTDemucs options: {'; '.join(unsupported)}")

    @property
    def training_length(self) -> int:
        # Same expression as demucs (a float segment such as 7.8 truncates exactly as it does there).
        return int(self.segment * self.samplerate)


# ---- spectrogram helpers (demucs/spec.py conventions: normalized STFT, Hann window) -------------------
def _reflect_pad(x: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """Reflect padding that also works on inputs shorter than the padding (zeros extend them first)."""
    length = x.shape[-1]
    widest = max(left, right)
    if length <= widest:
        extra = widest - length + 1
        extra_right = min(right, extra)
        extra_left = extra - extra_right
        x = F.pad(x, (extra_left, extra_right))
        left, right = left - extra_left, right - extra_right
    return F.pad(x, (left, right), mode="reflect")


def _stft(x: torch.Tensor, nfft: int, hop: int) -> torch.Tensor:
    *other, length = x.shape
    z = torch.stft(x.reshape(-1, length), nfft, hop, window=torch.hann_window(nfft).to(x), win_length=nfft,
                   normalized=True, center=True, return_complex=True, pad_mode="reflect")
    return z.view(*other, *z.shape[-2:])


def _istft(z: torch.Tensor, hop: int, length: int) -> torch.Tensor:
    *other, freqs, frames = z.shape
    nfft = 2 * freqs - 2
    x = torch.istft(z.reshape(-1, freqs, frames), nfft, hop, window=torch.hann_window(nfft).to(z.real),
                    win_length=nfft, normalized=True, length=length, center=True)
    return x.view(*other, x.shape[-1])


# ---- convolutional layers --------------------------------------------------------------------------
class LayerScale(nn.Module):
    def __init__(self, channels: int, channel_last: bool = False):
        super().__init__()
        self.channel_last = channel_last
        self.scale = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        return self.scale * x if self.channel_last else self.scale[:, None] * x


class DConv(nn.Module):
    """Residual branch of dilated convolutions; layer i is [conv, norm, GELU, 1x1 conv, norm, GLU, scale]."""

    def __init__(self, channels: int, compress: float, depth: int):
        super().__init__()
        hidden = int(channels / compress)
        self.layers = nn.ModuleList()
        for d in range(abs(depth)):
            dilation = 2 ** d if depth > 0 else 1
            self.layers.append(nn.Sequential(
                nn.Conv1d(channels, hidden, 3, dilation=dilation, padding=dilation),
                nn.GroupNorm(1, hidden), nn.GELU(),
                nn.Conv1d(hidden, 2 * channels, 1), nn.GroupNorm(1, 2 * channels), nn.GLU(1),
                LayerScale(channels),
            ))

    def forward(self, x):
        for layer in self.layers:
            x = x + layer(x)
        return x


def _over_frequencies(module: nn.Module, y: torch.Tensor) -> torch.Tensor:
    """Apply a 1-d (time) module to every frequency row of [B, C, F, T]."""
    b, c, fr, t = y.shape
    y = module(y.permute(0, 2, 1, 3).reshape(-1, c, t))
    return y.view(b, fr, c, t).permute(0, 2, 1, 3)


def _norm(groups: int, channels: int, enabled: bool) -> nn.Module:
    return nn.GroupNorm(groups, channels) if enabled else nn.Identity()


class EncoderLayer(nn.Module):
    """Strided conv (+ injected time branch), GELU, DConv, 1x1 'rewrite' conv with GLU (demucs HEncLayer)."""

    def __init__(self, chin, chout, *, kernel_size, stride, freq, pad, norm, norm_groups, rewrite, dconv,
                 dconv_comp, dconv_depth, context=0, empty=False):
        super().__init__()
        self.freq, self.stride, self.empty = freq, stride, empty
        pad = kernel_size // 4 if pad else 0
        if freq:
            self.conv = nn.Conv2d(chin, chout, [kernel_size, 1], [stride, 1], [pad, 0])
        else:
            self.conv = nn.Conv1d(chin, chout, kernel_size, stride, pad)
        if empty:
            return
        conv = nn.Conv2d if freq else nn.Conv1d
        self.norm1 = _norm(norm_groups, chout, norm)
        self.rewrite = None
        if rewrite:
            self.rewrite = conv(chout, 2 * chout, 1 + 2 * context, 1, context)
            self.norm2 = _norm(norm_groups, 2 * chout, norm)
        self.dconv = DConv(chout, dconv_comp, dconv_depth) if dconv else None

    def forward(self, x, inject=None):
        if not self.freq:
            if x.dim() == 4:
                x = x.reshape(x.shape[0], -1, x.shape[-1])
            if x.shape[-1] % self.stride:
                x = F.pad(x, (0, self.stride - x.shape[-1] % self.stride))
        y = self.conv(x)
        if self.empty:
            return y
        if inject is not None:
            y = y + (inject[:, :, None] if inject.dim() == 3 and y.dim() == 4 else inject)
        y = F.gelu(self.norm1(y))
        if self.dconv is not None:
            y = _over_frequencies(self.dconv, y) if self.freq else self.dconv(y)
        if self.rewrite is None:
            return y
        return F.glu(self.norm2(self.rewrite(y)), dim=1)


class DecoderLayer(nn.Module):
    """Skip add, rewrite conv with GLU, DConv, transposed conv (demucs HDecLayer); also returns the
    pre-transposed-conv activations, from which the time branch leaves the merged one."""

    def __init__(self, chin, chout, *, kernel_size, stride, freq, pad, norm, norm_groups, rewrite, dconv,
                 dconv_comp, dconv_depth, context=1, last=False, empty=False):
        super().__init__()
        self.freq, self.chin, self.last, self.empty = freq, chin, last, empty
        self.pad = kernel_size // 4 if pad else 0
        if freq:
            self.conv_tr = nn.ConvTranspose2d(chin, chout, [kernel_size, 1], [stride, 1])
        else:
            self.conv_tr = nn.ConvTranspose1d(chin, chout, kernel_size, stride)
        self.norm2 = _norm(norm_groups, chout, norm)
        if empty:
            return
        conv = nn.Conv2d if freq else nn.Conv1d
        self.rewrite = None
        if rewrite:
            self.rewrite = conv(chin, 2 * chin, 1 + 2 * context, 1, context)
            self.norm1 = _norm(norm_groups, 2 * chin, norm)
        self.dconv = DConv(chin, dconv_comp, dconv_depth) if dconv else None

    def forward(self, x, skip, length):
        if self.freq and x.dim() == 3:
            x = x.view(x.shape[0], self.chin, -1, x.shape[-1])
        if self.empty:
            y = x
        else:
            x = x + skip
            y = F.glu(self.norm1(self.rewrite(x)), dim=1) if self.rewrite is not None else x
            if self.dconv is not None:
                y = _over_frequencies(self.dconv, y) if self.freq else self.dconv(y)
        z = self.norm2(self.conv_tr(y))
        if self.freq:
            if self.pad:
                z = z[..., self.pad:-self.pad, :]
        else:
            z = z[..., self.pad:self.pad + length]
        if not self.last:
            z = F.gelu(z)
        return z, y


class FrequencyEmbedding(nn.Module):
    """Learned per-frequency-row embedding added after the first spectral layer (demucs ScaledEmbedding)."""

    def __init__(self, num: int, dim: int, scale: float):
        super().__init__()
        self.embedding = nn.Embedding(num, dim)
        self.scale = scale

    def forward(self, idx):
        return self.embedding(idx) * self.scale


# ---- cross-domain transformer ------------------------------------------------------------------------
def sin_embedding(length: int, dim: int, *, max_period: float, device=None, mean_normalize: bool = False):
    """[length, 1, dim] cos|sin positions (``create_sin_embedding``; CAPE at eval when mean-normalised)."""
    pos = torch.arange(length, device=device).view(-1, 1, 1)
    if mean_normalize:
        pos = pos.float() - pos.float().mean()
    half = dim // 2
    adim = torch.arange(half, device=device).view(1, 1, -1)
    phase = pos / (max_period ** (adim / (half - 1)))
    return torch.cat([torch.cos(phase), torch.sin(phase)], dim=-1).float()


def sin_embedding_2d(dim: int, height: int, width: int, *, max_period: float, device=None):
    """[1, dim, height, width]: first half of the channels encode width (time), second half height (freq)."""
    pe = torch.zeros(dim, height, width)
    half = dim // 2
    div = torch.exp(torch.arange(0.0, half, 2) * -(math.log(max_period) / half))
    pos_w = torch.arange(0.0, width).unsqueeze(1)
    pos_h = torch.arange(0.0, height).unsqueeze(1)
    pe[0:half:2] = torch.sin(pos_w * div).transpose(0, 1).unsqueeze(1).repeat(1, height, 1)
    pe[1:half:2] = torch.cos(pos_w * div).transpose(0, 1).unsqueeze(1).repeat(1, height, 1)
    pe[half::2] = torch.sin(pos_h * div).transpose(0, 1).unsqueeze(2).repeat(1, 1, width)
    pe[half + 1::2] = torch.cos(pos_h * div).transpose(0, 1).unsqueeze(2).repeat(1, 1, width)
    return pe[None].to(device)


class ChannelLastGroupNorm(nn.GroupNorm):
    """GroupNorm over [B, T, C] (one group normalises every token and channel of a sample)."""

    def forward(self, x):
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class PackedAttention(nn.Module):
    """Multi-head attention with ``nn.MultiheadAttention``'s parameter layout (packed q/k/v projection)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, query, key):
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        q = split_heads(F.linear(query, w_q, b_q), self.heads)
        k = split_heads(F.linear(key, w_k, b_k), self.heads)
        v = split_heads(F.linear(key, w_v, b_v), self.heads)
        return self.out_proj(merge_heads(attention(q, k, v)))


def _token_norm(dim: int, groups) -> nn.Module:
    return ChannelLastGroupNorm(int(groups), dim, eps=1e-5) if groups else nn.LayerNorm(dim, eps=1e-5)


class TransformerLayer(nn.Module):
    """Self- (``cross=False``) or cross-attention layer with a GELU/ReLU feed-forward and layer scales;
    names follow demucs' MyTransformerEncoderLayer / CrossTransformerEncoderLayer."""

    def __init__(self, dim, heads, hidden, *, cross, gelu, group_norm, norm_first, norm_out, layer_scale):
        super().__init__()
        self.cross, self.norm_first = cross, norm_first
        self.activation = F.gelu if gelu else F.relu
        attn = PackedAttention(dim, heads)
        if cross:
            self.cross_attn = attn
        else:
            self.self_attn = attn
        self.linear1 = nn.Linear(dim, hidden)
        self.linear2 = nn.Linear(hidden, dim)
        self.norm1 = _token_norm(dim, group_norm)
        self.norm2 = _token_norm(dim, group_norm)
        if cross:
            self.norm3 = _token_norm(dim, group_norm)
        self.norm_out = ChannelLastGroupNorm(int(norm_out), dim) if norm_first and norm_out else None
        self.gamma_1 = LayerScale(dim, channel_last=True) if layer_scale else nn.Identity()
        self.gamma_2 = LayerScale(dim, channel_last=True) if layer_scale else nn.Identity()

    def _attend(self, q, k):
        return self.cross_attn(q, k) if self.cross else self.self_attn(q, q)

    def _feed_forward(self, x):
        return self.linear2(self.activation(self.linear1(x)))

    def forward(self, x, other=None):
        if self.norm_first:
            key = self.norm2(other) if self.cross else None
            x = x + self.gamma_1(self._attend(self.norm1(x), key))
            x = x + self.gamma_2(self._feed_forward((self.norm3 if self.cross else self.norm2)(x)))
            return self.norm_out(x) if self.norm_out is not None else x
        x = self.norm1(x + self.gamma_1(self._attend(x, other)))
        return self.norm2(x + self.gamma_2(self._feed_forward(x)))


class ScaledPositions(nn.Module):
    """Learned positions boosted by 3 (demucs transformer.ScaledEmbedding, ``t_emb='scaled'``)."""

    def __init__(self, num: int, dim: int):
        super().__init__()
        self.embedding = nn.Embedding(num, dim)

    def forward(self, idx):
        return self.embedding(idx) * 3.0


def _spectral_tokens(x: torch.Tensor) -> torch.Tensor:
    """[B, C, F, T] -> [B, T*F, C], time-major like demucs' ``b c fr t1 -> b (t1 fr) c``."""
    return x.permute(0, 3, 2, 1).reshape(x.shape[0], -1, x.shape[1])


class CrossDomainTransformer(nn.Module):
    """Alternating per-branch self-attention and spectral<->temporal cross-attention (demucs
    CrossTransformerEncoder); spectral tokens are (time, frequency) pairs with 2-d sinusoids."""

    def __init__(self, cfg: HTDemucsConfig, dim: int):
        super().__init__()
        self.emb, self.max_period = cfg.t_emb, cfg.t_max_period
        self.weight_pos_embed = cfg.t_weight_pos_embed
        self.cape_mean_normalize = cfg.t_cape_mean_normalize
        self.classic_parity = 1 if cfg.t_cross_first else 0
        if cfg.t_emb == "scaled":
            self.position_embeddings = ScaledPositions(cfg.t_max_positions, dim)
        if cfg.t_norm_in:
            self.norm_in, self.norm_in_t = nn.LayerNorm(dim), nn.LayerNorm(dim)
        elif cfg.t_norm_in_group:
            self.norm_in = ChannelLastGroupNorm(int(cfg.t_norm_in_group), dim)
            self.norm_in_t = ChannelLastGroupNorm(int(cfg.t_norm_in_group), dim)
        else:
            self.norm_in, self.norm_in_t = nn.Identity(), nn.Identity()
        kw = dict(gelu=cfg.t_gelu, group_norm=cfg.t_group_norm, norm_first=cfg.t_norm_first,
                  norm_out=cfg.t_norm_out, layer_scale=cfg.t_layer_scale)
        hidden = int(dim * cfg.t_hidden_scale)
        self.layers = nn.ModuleList()
        self.layers_t = nn.ModuleList()
        for idx in range(cfg.t_layers):
            cross = idx % 2 != self.classic_parity
            self.layers.append(TransformerLayer(dim, cfg.t_heads, hidden, cross=cross, **kw))
            self.layers_t.append(TransformerLayer(dim, cfg.t_heads, hidden, cross=cross, **kw))

    def _time_positions(self, length: int, dim: int, device) -> torch.Tensor:
        if self.emb == "scaled":
            return self.position_embeddings(torch.arange(length, device=device))[None]
        pe = sin_embedding(length, dim, max_period=self.max_period, device=device,
                           mean_normalize=self.emb == "cape" and self.cape_mean_normalize)
        return pe.transpose(0, 1)

    def forward(self, x, xt):
        b, c, fr, t1 = x.shape
        pos = sin_embedding_2d(c, fr, t1, max_period=self.max_period, device=x.device)
        x = self.norm_in(_spectral_tokens(x)) + self.weight_pos_embed * _spectral_tokens(pos)
        xt = xt.transpose(1, 2)
        xt = self.norm_in_t(xt) + self.weight_pos_embed * self._time_positions(xt.shape[1], c, x.device)
        for spec_layer, time_layer in zip(self.layers, self.layers_t):
            if spec_layer.cross:
                x, xt = spec_layer(x, xt), time_layer(xt, x)
            else:
                x, xt = spec_layer(x), time_layer(xt)
        x = x.reshape(b, t1, fr, c).permute(0, 3, 2, 1)
        return x, xt.transpose(1, 2)


# ---- the model -----------------------------------------------------------------------------------------
class HTDemucs(nn.Module):
    """[B, audio_channels, T] mixture -> [B, sources, audio_channels, T] estimates."""

    def __init__(self, cfg: HTDemucsConfig):
        super().__init__()
        self.cfg = cfg
        self.sources = list(cfg.sources)
        self.samplerate, self.audio_channels = cfg.samplerate, cfg.audio_channels
        self.nfft, self.hop_length, self.depth = cfg.nfft, cfg.nfft // 4, cfg.depth
        self.encoder, self.decoder = nn.ModuleList(), nn.ModuleList()
        self.tencoder, self.tdecoder = nn.ModuleList(), nn.ModuleList()
        self.freq_emb = None

        chin = cfg.audio_channels
        chin_z = chin * 2  # complex as channels
        chout = cfg.channels_time or cfg.channels
        chout_z = cfg.channels
        freqs = cfg.nfft // 2
        for index in range(cfg.depth):
            freq = freqs > 1
            ker, stri, pad, last_freq = cfg.kernel_size, cfg.stride, True, False
            if not freq:  # after the branches merged: plain time convolutions
                ker, stri = cfg.time_stride * 2, cfg.time_stride
            elif freqs <= cfg.kernel_size:  # the last frequency layer collapses the remaining rows
                ker, pad, last_freq = freqs, False, True
            common = dict(norm=index >= cfg.norm_starts, norm_groups=cfg.norm_groups, rewrite=cfg.rewrite,
                          dconv_comp=cfg.dconv_comp, dconv_depth=cfg.dconv_depth)
            spec_kw = dict(common, kernel_size=ker, stride=stri, freq=freq, pad=pad)
            time_kw = dict(common, kernel_size=cfg.kernel_size, stride=cfg.stride, freq=False, pad=True)
            if last_freq:
                chout_z = max(chout, chout_z)
                chout = chout_z
            self.encoder.append(EncoderLayer(chin_z, chout_z, dconv=cfg.dconv_mode & 1, context=cfg.context_enc,
                                             **spec_kw))
            if freq:
                self.tencoder.append(EncoderLayer(chin, chout, dconv=cfg.dconv_mode & 1, context=cfg.context_enc,
                                                  empty=last_freq, **time_kw))
            if index == 0:
                chin = cfg.audio_channels * len(cfg.sources)
                chin_z = chin * 2
            self.decoder.insert(0, DecoderLayer(chout_z, chin_z, dconv=cfg.dconv_mode & 2, last=index == 0,
                                                context=cfg.context, **spec_kw))
            if freq:
                self.tdecoder.insert(0, DecoderLayer(chout, chin, dconv=cfg.dconv_mode & 2, empty=last_freq,
                                                     last=index == 0, context=cfg.context, **time_kw))
            chin, chin_z = chout, chout_z
            chout, chout_z = int(cfg.growth * chout), int(cfg.growth * chout_z)
            if freq:
                freqs = 1 if freqs <= cfg.kernel_size else freqs // cfg.stride
            if index == 0 and cfg.freq_emb:
                self.freq_emb = FrequencyEmbedding(freqs, chin_z, cfg.emb_scale)
                self.freq_emb_scale = cfg.freq_emb

        dim = cfg.channels * cfg.growth ** (cfg.depth - 1)
        if cfg.bottom_channels:
            self.channel_upsampler = nn.Conv1d(dim, cfg.bottom_channels, 1)
            self.channel_downsampler = nn.Conv1d(cfg.bottom_channels, dim, 1)
            self.channel_upsampler_t = nn.Conv1d(dim, cfg.bottom_channels, 1)
            self.channel_downsampler_t = nn.Conv1d(cfg.bottom_channels, dim, 1)
            dim = cfg.bottom_channels
        self.crosstransformer = CrossDomainTransformer(cfg, dim) if cfg.t_layers > 0 else None

    @property
    def training_length(self) -> int:
        return self.cfg.training_length

    def valid_length(self, length: int) -> int:
        """The length the model runs on: its training segment (shorter input is padded to it)."""
        if not self.cfg.use_train_segment:
            return length
        if length > self.training_length:
            raise ValueError(f"HTDemucs: input of {length} samples is longer than its segment ({self.training_length})")
        return self.training_length

    def _spec(self, x):
        # Padding by 3/8 nfft on each side makes the frame count exactly length / hop (demucs _spec).
        hop = self.hop_length
        frames = math.ceil(x.shape[-1] / hop)
        pad = hop // 2 * 3
        x = _reflect_pad(x, pad, pad + frames * hop - x.shape[-1])
        return _stft(x, self.nfft, hop)[..., :-1, 2:2 + frames]

    def _ispec(self, z, length: int):
        hop = self.hop_length
        z = F.pad(F.pad(z, (0, 0, 0, 1)), (2, 2))
        pad = hop // 2 * 3
        x = _istft(z, hop, hop * math.ceil(length / hop) + 2 * pad)
        return x[..., pad:pad + length]

    def forward(self, mix):
        length = mix.shape[-1]
        if self.cfg.use_train_segment and length < self.training_length:
            mix = F.pad(mix, (0, self.training_length - length))
        run_length = mix.shape[-1]
        z = self._spec(mix)
        b, c, fq, t = z.shape
        x = torch.view_as_real(z).permute(0, 1, 4, 2, 3).reshape(b, c * 2, fq, t)
        # Both branches are standardised per example (the model always normalises, demucs htdemucs.py).
        mean, std = x.mean(dim=(1, 2, 3), keepdim=True), x.std(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) / (1e-5 + std)
        meant, stdt = mix.mean(dim=(1, 2), keepdim=True), mix.std(dim=(1, 2), keepdim=True)
        xt = (mix - meant) / (1e-5 + stdt)

        saved, saved_t, lengths, lengths_t = [], [], [], []
        for idx, encode in enumerate(self.encoder):
            lengths.append(x.shape[-1])
            inject = None
            if idx < len(self.tencoder):
                lengths_t.append(xt.shape[-1])
                tenc = self.tencoder[idx]
                xt = tenc(xt)
                if tenc.empty:  # the time branch joins the spectral one here
                    inject = xt
                else:
                    saved_t.append(xt)
            x = encode(x, inject)
            if idx == 0 and self.freq_emb is not None:
                emb = self.freq_emb(torch.arange(x.shape[-2], device=x.device)).t()[None, :, :, None]
                x = x + self.freq_emb_scale * emb.expand_as(x)
            saved.append(x)

        if self.crosstransformer is not None:
            if self.cfg.bottom_channels:
                f = x.shape[2]
                x = self.channel_upsampler(x.flatten(2, 3)).unflatten(2, (f, -1))
                xt = self.channel_upsampler_t(xt)
            x, xt = self.crosstransformer(x, xt)
            if self.cfg.bottom_channels:
                x = self.channel_downsampler(x.flatten(2, 3)).unflatten(2, (f, -1))
                xt = self.channel_downsampler_t(xt)

        offset = self.depth - len(self.tdecoder)
        for idx, decode in enumerate(self.decoder):
            x, pre = decode(x, saved.pop(), lengths.pop())
            if idx >= offset:
                tdec = self.tdecoder[idx - offset]
                if tdec.empty:  # the time branch leaves the merged one from its pre-upsampling activations
                    xt, _ = tdec(pre[:, :, 0], None, lengths_t.pop())
                else:
                    xt, _ = tdec(xt, saved_t.pop(), lengths_t.pop())

        s = len(self.sources)
        x = x.view(b, s, -1, fq, t) * std[:, None] + mean[:, None]
        spec = x.view(b, s, -1, 2, fq, t).permute(0, 1, 2, 4, 5, 3).contiguous()
        wave = self._ispec(torch.view_as_complex(spec), run_length)
        wave = (xt.view(b, s, -1, run_length) * stdt[:, None] + meant[:, None]) + wave
        return wave[..., :length]


def build_htdemucs(kwargs: dict, *, context: str = "HTDemucs") -> HTDemucs:
    return HTDemucs(HTDemucsConfig.from_kwargs(kwargs, context=context))
