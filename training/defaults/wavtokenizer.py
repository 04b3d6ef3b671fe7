"""Training a tiny WavTokenizer (24 kHz, one codebook) on the world's audio, on the shared trainer.

Layout: the released generator (``feature_extractor.encodec.*``, ``backbone.*``, ``head.*``; weight norm
folded), so ``load_wavtokenizer`` reads the file strictly and infers every size from it. Configuration: the
40 tokens/s release (encoder strides 6 5 5 4, hop 600) at a small width. One departure, read from the
weights by the loader: the ISTFT head's window is 2 hops (1200 samples, 50 ms) instead of the release's 4
(100 ms): an impact decoded through a 100 ms window rises too slowly for the onset rule the defaults are
scored with (9 dB within 20 ms); a 50 ms Hann window at 50 % overlap still reconstructs exactly.

Losses (what fits a CPU budget): WavTokenizer trains with multi-period / multi-resolution discriminators,
feature matching and a mel L1 (weight 45) plus the VQ commitment term. The discriminators and feature
matching would roughly triple the cost per step, so this is the regression part only: log-mel L1 at 24 kHz,
multi-resolution log-STFT magnitude, the commitment term (Encodec's weight 1), and a DC term (neither
spectral term sees a wave's mean: the tiny vocoder of the AudioGen-Omni default drifted to an offset that
hid every onset; benchmarks/tiny_defaults_feasibility.md). The codebook learns as Encodec's does: k-means-
like initialisation from the first batch, EMA updates (decay 0.99), dead codes replaced by batch vectors.
The SEANet decoder the released file also holds is unused at inference and stays at its initialisation.
"""
from __future__ import annotations

import random
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ...models.common.codecs.wavtokenizer import SAMPLE_RATE, WavTokenizer, WavTokenizerConfig

EMA_DECAY = 0.99  # Encodec's EuclideanCodebook
DEAD_CODE = 2.0  # Encodec's threshold_ema_dead_code
COMMIT_WEIGHT = 1.0
DC_WEIGHT = 10.0
STFT_RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))
# Floor of the magnitudes both spectral terms take the log of: a sine of amplitude ~1e-4 (-80 dBFS). The
# world's audio has digital silence between events and nothing above 8 kHz (drawn at 16 kHz): with the usual
# 1e-5 floor a third of the mel bins sit at log(1e-5), a level the ISTFT head's exp() reaches only after its
# biases travel ~10 units, thousands of steps; measured: the log-mel L1 stayed at ~5 for 150 steps.
MAG_FLOOR = 1e-2


def tiny_config(bins: int = 512, width: int = 64) -> WavTokenizerConfig:
    base = WavTokenizerConfig.preset(40)
    return WavTokenizerConfig(ratios=base.ratios, decoder_ratios=base.ratios, dimension=width, n_filters=8,
                              bins=bins, lstm_layers=1, backbone_dim=width, intermediate_dim=2 * width, num_layers=2,
                              n_fft=2 * base.hop_length, hop_length=base.hop_length, sample_rate=SAMPLE_RATE)


HEAD_LOG_MAGNITUDE = -4.0  # initial bias of the head's log magnitudes: output starts quiet, just above MAG_FLOOR


def new_codec(cfg: WavTokenizerConfig, seed: int) -> WavTokenizer:
    torch.manual_seed(seed)
    codec = WavTokenizer(cfg)
    codec.feature_extractor.encodec.quantizer.vq.layers[0]._codebook.inited.zero_()
    with torch.no_grad():  # the world is mostly silence: start near it (60 steps: loss 2.5 against 3.4 from 0)
        codec.head.out.bias[: cfg.n_fft // 2 + 1] = HEAD_LOG_MAGNITUDE
    return codec


def to_codec_rate(wave: np.ndarray, rate: int) -> torch.Tensor:
    import torchaudio.functional as AF

    x = torch.as_tensor(np.asarray(wave, np.float32))
    return x if rate == SAMPLE_RATE else AF.resample(x, rate, SAMPLE_RATE)


def wave_batches(waves: list[torch.Tensor], batch: int, seed: int, hop: int, seconds: float = 1.0) -> Iterator[torch.Tensor]:
    """Random ``seconds`` crops (a whole number of tokens) of the waves; crops that are silent are skipped."""
    rng = random.Random(seed)
    n = int(round(seconds * SAMPLE_RATE / hop)) * hop
    loud = [w for w in waves if len(w) >= n and float(w.abs().max()) > 1e-3]
    while True:
        out = []
        while len(out) < batch:
            w = loud[rng.randrange(len(loud))]
            a = rng.randrange(0, len(w) - n + 1)
            if float(w[a:a + n].abs().max()) > 1e-3:
                out.append(w[a:a + n])
        yield torch.stack(out)


class CodecLoss:
    def __init__(self, seed: int = 0):
        import torchaudio

        self.generator = torch.Generator().manual_seed(seed)
        self.mel = torchaudio.transforms.MelSpectrogram(SAMPLE_RATE, n_fft=1024, hop_length=256, n_mels=80,
                                                        power=1.0)

    def log_mel(self, x: torch.Tensor) -> torch.Tensor:
        return self.mel(x).clamp_min(MAG_FLOOR).log()

    def __call__(self, model, wave: torch.Tensor):
        net = getattr(model, "module", model)
        z = net.encode_features(wave)  # [B, D, T]
        book = net.feature_extractor.encodec.quantizer.vq.layers[0]._codebook
        flat = z.detach().transpose(1, 2).reshape(-1, z.shape[1])
        if model.training:
            update_codebook(book, flat, self.generator)
        idx = book.quantize(flat)
        q = F.embedding(idx, book.embed).view(z.shape[0], z.shape[2], -1).transpose(1, 2)
        commit = F.mse_loss(z, q.detach())
        pred = net.decode(z + (q - z).detach())[:, : wave.shape[-1]]  # straight-through estimator
        mel_l1 = (self.log_mel(pred) - self.log_mel(wave)).abs().mean()
        stft = 0.0
        for n_fft, hop in STFT_RESOLUTIONS:
            win = torch.hann_window(n_fft)
            a = torch.stft(pred, n_fft, hop, window=win, return_complex=True).abs().clamp_min(MAG_FLOOR)
            b = torch.stft(wave, n_fft, hop, window=win, return_complex=True).abs().clamp_min(MAG_FLOOR)
            stft = stft + (a.log() - b.log()).abs().mean() / len(STFT_RESOLUTIONS)
        dc = (pred.mean(-1) - wave.mean(-1)).abs().mean()
        used = float(idx.unique().numel()) / book.embed.shape[0]
        loss = mel_l1 + stft + COMMIT_WEIGHT * commit + DC_WEIGHT * dc
        return loss, {"mel_l1": float(mel_l1.detach()), "stft": float(stft.detach()), "commit": float(commit.detach()),
                      "dc": float(dc.detach()), "codes_used": used}


@torch.no_grad()
def update_codebook(book, flat: torch.Tensor, g: torch.Generator) -> None:
    """Encodec's EMA codebook: initialise from the data, then cluster sizes and sums by EMA (Laplace-smoothed)
    and codes whose cluster size fell under DEAD_CODE replaced by random vectors of the batch."""
    bins = book.embed.shape[0]
    if not bool(book.inited.item()):
        pick = torch.randint(0, flat.shape[0], (bins,), generator=g)
        book.embed.copy_(flat[pick] + 1e-3 * torch.randn(bins, flat.shape[1], generator=g))
        book.embed_avg.copy_(book.embed)
        book.cluster_size.fill_(1.0)
        book.inited.fill_(1.0)
    idx = book.quantize(flat)
    onehot = F.one_hot(idx, bins).type(flat.dtype)
    book.cluster_size.mul_(EMA_DECAY).add_(onehot.sum(0), alpha=1 - EMA_DECAY)
    book.embed_avg.mul_(EMA_DECAY).add_(onehot.t() @ flat, alpha=1 - EMA_DECAY)
    n = book.cluster_size.sum()
    smoothed = (book.cluster_size + 1e-5) / (n + bins * 1e-5) * n
    book.embed.copy_(book.embed_avg / smoothed[:, None])
    dead = book.cluster_size < DEAD_CODE
    if bool(dead.any()):
        pick = torch.randint(0, flat.shape[0], (int(dead.sum()),), generator=g)
        book.embed[dead] = flat[pick]
        book.embed_avg[dead] = flat[pick] * DEAD_CODE
        book.cluster_size[dead] = DEAD_CODE


def codec_state_dict(codec: WavTokenizer) -> dict[str, torch.Tensor]:
    """The released generator keys (weight norm folded), fp16: what ``load_wavtokenizer`` reads."""
    return {k: v.detach().half().contiguous() for k, v in codec.state_dict().items()}


__all__ = ["CodecLoss", "codec_state_dict", "new_codec", "tiny_config", "to_codec_rate", "update_codebook",
           "wave_batches"]
