"""Speaker encoder (paper 3.2): log-mel of a 3 s reference -> conv/attention stack -> average-pooled
global embedding that carries the target speaker's timbre."""
from __future__ import annotations

import torch
from torch import nn

from ..common.attention import attention, merge_heads, split_heads


class LogMel(nn.Module):
    """Log-magnitude mel spectrogram [B, N] -> [B, n_mels, frames] (Vocos-style 24 kHz analysis).

    The window and filterbank are recomputed, not stored, so checkpoints hold only learned weights.
    """

    def __init__(self, sample_rate: int, n_mels: int, n_fft: int = 1024, hop_length: int = 256):
        super().__init__()
        from torchaudio.functional import melscale_fbanks

        self.n_fft, self.hop_length = n_fft, hop_length
        with torch.device("cpu"):  # real values even when the model is built on the meta device
            window = torch.hann_window(n_fft)
            fb = melscale_fbanks(n_fft // 2 + 1, 0.0, sample_rate / 2, n_mels, sample_rate)
        self.register_buffer("window", window, persistent=False)
        self.register_buffer("fbank", fb, persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        # fp32 whatever the module's dtype: CPU FFTs take no fp16
        spec = torch.stft(wav.float(), self.n_fft, self.hop_length, window=self.window.float(), center=True,
                          pad_mode="reflect", return_complex=True).abs()
        mel = torch.einsum("bft,fm->bmt", spec, self.fbank.float())
        return torch.log(torch.clamp(mel, min=1e-5))


class _SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (split_heads(t, self.heads) for t in self.qkv(self.norm(x)).chunk(3, dim=-1))
        return x + self.out(merge_heads(attention(q, k, v)))


class SpeakerEncoder(nn.Module):
    def __init__(self, n_mels: int, channels: int, out_dim: int, heads: int, sample_rate: int):
        super().__init__()
        self.logmel = LogMel(sample_rate, n_mels)
        self.convs = nn.Sequential(
            nn.Conv1d(n_mels, channels, 5, padding=2), nn.GELU(),
            nn.Conv1d(channels, channels, 5, padding=2), nn.GELU(),
        )
        self.attn = _SelfAttention(channels, heads)
        self.proj = nn.Linear(channels, out_dim)

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """wav [B, N] (codec rate) -> embedding [B, out_dim]; ``lengths`` in samples for padded batches.

        Padded references are encoded one by one at their own length, so padding never leaks in.
        """
        if lengths is not None:
            return torch.cat([self(w[None, : int(n)]) for w, n in zip(wav, lengths)])
        mel = self.logmel(wav).to(self.convs[0].weight.dtype)  # the log-mel is fp32; the convs may be fp16 / bf16
        h = self.convs(mel).transpose(1, 2)  # [B, frames, C]
        return self.proj(self.attn(h).mean(1))


def reference_crop(wav: torch.Tensor, sample_rate: int, seconds: float,
                   generator: torch.Generator | None = None, random: bool = False) -> torch.Tensor:
    """A ``seconds``-long piece of a reference [N]: random when training (paper 3.2), else the start."""
    n = int(round(seconds * sample_rate))
    if wav.shape[-1] <= n:
        return wav
    start = int(torch.randint(0, wav.shape[-1] - n + 1, (1,), generator=generator)) if random else 0
    return wav[..., start:start + n]

