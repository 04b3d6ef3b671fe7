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
the multi-resolution STFT loss (spectral convergence plus log magnitude, Parallel WaveGAN's form: the linear
term pulls the quiet initial output up to the sounding bins), the commitment term (Encodec's weight 1), and
a DC term (neither spectral term sees a wave's mean: the tiny vocoder of the AudioGen-Omni default drifted
to an offset that hid every onset; benchmarks/tiny_defaults_feasibility.md). The codebook learns as
Encodec's does, after AUTOENCODER_STEPS of plain autoencoding: initialised from a batch of features, EMA
updates (decay 0.99), dead codes replaced by batch vectors.
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
# Encodec replaces a code whose EMA cluster size falls under 2 (threshold_ema_dead_code), with batches of
# thousands of vectors per step; here a step holds a few hundred for 512 codes, so a code's expected size is
# under 1 and nearly every code was "dead" and re-drawn at every step. The threshold is a fraction of that
# expected size instead: a code is replaced after some hundred steps unused.
DEAD_FRACTION = 0.3
COMMIT_WEIGHT = 1.0
DC_WEIGHT = 10.0
SC_WEIGHT = 1.0
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


def soft_log(magnitude: torch.Tensor) -> torch.Tensor:
    # log(x + floor), not log(clamp(x, floor)): a clamp passes no gradient below the floor, and a decoder
    # that starts quiet sits there for good (measured: the first DualDub codec's log-mel L1 stayed at the
    # all-silence value, 2.04, for 400 steps, then diverged)
    return (magnitude + MAG_FLOOR).log()


# Steps of plain autoencoding before the codebook is drawn from the encoder's features: drawn at step 0 it
# holds copies of near-identical vectors and collapses to one code (measured: 1 of 512 codes in use).
AUTOENCODER_STEPS = 100


def new_codec(cfg: WavTokenizerConfig, seed: int, waves: list[torch.Tensor] | None = None) -> WavTokenizer:
    torch.manual_seed(seed)
    codec = WavTokenizer(cfg)
    codec.feature_extractor.encodec.quantizer.vq.layers[0]._codebook.inited.zero_()
    # Variance-preserving encoder convolutions with zero biases: under PyTorch's default init a sound's
    # variation shrinks ~100x through the 13 SEANet convolutions while their biases pass, so the features
    # are a constant the decoder can learn nothing from (measured: the log-mel L1 sat at its all-silence
    # value for 500 steps, also as a plain autoencoder).
    for m in codec.feature_extractor.encodec.encoder.modules():
        if isinstance(m, torch.nn.Conv1d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="linear")
            torch.nn.init.zeros_(m.bias)
    if waves:
        with torch.no_grad():
            codec.head.out.bias[: cfg.n_fft // 2 + 1] = mean_log_spectrum(waves, cfg)
    return codec


def mean_log_spectrum(waves: list[torch.Tensor], cfg: WavTokenizerConfig, limit: int = 64) -> torch.Tensor:
    """Per-bin mean log magnitude of the sounding frames (the head's own STFT): the head starts at the
    data's average spectrum, not at exp(0) or at silence, so the first steps shape sound instead of level."""
    win = torch.hann_window(cfg.n_fft)
    rows = []
    for w in waves[:limit]:
        mag = torch.stft(w, cfg.n_fft, cfg.hop_length, window=win, return_complex=True).abs()
        energy = mag.sum(0)
        loud = energy > 1e-3 * energy.max()
        if bool(loud.any()):
            rows.append(soft_log(mag[:, loud]).mean(1))
    return torch.stack(rows).mean(0)


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
    def __init__(self, seed: int = 0, autoencoder_steps: int = AUTOENCODER_STEPS):
        import torchaudio

        self.autoencoder_steps, self.steps = autoencoder_steps, 0
        self.generator = torch.Generator().manual_seed(seed)
        self.mel = torchaudio.transforms.MelSpectrogram(SAMPLE_RATE, n_fft=1024, hop_length=256, n_mels=80,
                                                        power=1.0)

    def log_mel(self, x: torch.Tensor) -> torch.Tensor:
        return soft_log(self.mel(x))

    def __call__(self, model, wave: torch.Tensor):
        net = getattr(model, "module", model)
        z = net.encode_features(wave)  # [B, D, T]
        book = net.feature_extractor.encodec.quantizer.vq.layers[0]._codebook
        flat = z.detach().transpose(1, 2).reshape(-1, z.shape[1])
        if model.training:
            self.steps += 1
        if model.training and self.steps <= self.autoencoder_steps:
            # the codebook is drawn from features that already carry the sound (see AUTOENCODER_STEPS)
            idx, q, commit = None, z, z.new_zeros(())
        else:
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
            a = torch.stft(pred, n_fft, hop, window=win, return_complex=True).abs()
            b = torch.stft(wave, n_fft, hop, window=win, return_complex=True).abs()
            converge = (a - b).norm() / b.norm().clamp_min(1e-6)
            stft = stft + (SC_WEIGHT * converge + (soft_log(a) - soft_log(b)).abs().mean()) / len(STFT_RESOLUTIONS)
        dc = (pred.mean(-1) - wave.mean(-1)).abs().mean()
        used = 1.0 if idx is None else float(idx.unique().numel()) / book.embed.shape[0]
        loss = mel_l1 + stft + COMMIT_WEIGHT * commit + DC_WEIGHT * dc
        return loss, {"mel_l1": float(mel_l1.detach()), "stft": float(stft.detach()), "commit": float(commit.detach()),
                      "dc": float(dc.detach()), "codes_used": used}


@torch.no_grad()
def update_codebook(book, flat: torch.Tensor, g: torch.Generator) -> None:
    """Encodec's EMA codebook: initialise from the data, then cluster sizes and sums by EMA (Laplace-smoothed)
    and codes whose cluster size fell under DEAD_FRACTION of the expected size replaced by vectors of the batch."""
    bins = book.embed.shape[0]
    if not bool(book.inited.item()):
        pick = torch.randint(0, flat.shape[0], (bins,), generator=g)
        book.embed.copy_(flat[pick] + 1e-3 * torch.randn(bins, flat.shape[1], generator=g))
        book.cluster_size.fill_(flat.shape[0] / bins)
        book.embed_avg.copy_(book.embed * book.cluster_size[:, None])  # the EMA pair whose ratio is the code
        book.inited.fill_(1.0)
    idx = book.quantize(flat)
    onehot = F.one_hot(idx, bins).type(flat.dtype)
    book.cluster_size.mul_(EMA_DECAY).add_(onehot.sum(0), alpha=1 - EMA_DECAY)
    book.embed_avg.mul_(EMA_DECAY).add_(onehot.t() @ flat, alpha=1 - EMA_DECAY)
    n = book.cluster_size.sum()
    smoothed = (book.cluster_size + 1e-5) / (n + bins * 1e-5) * n
    book.embed.copy_(book.embed_avg / smoothed[:, None])
    expected = flat.shape[0] / bins
    dead = book.cluster_size < DEAD_FRACTION * expected
    if bool(dead.any()):
        pick = torch.randint(0, flat.shape[0], (int(dead.sum()),), generator=g)
        book.embed[dead] = flat[pick]
        book.embed_avg[dead] = flat[pick] * expected
        book.cluster_size[dead] = expected


def codec_state_dict(codec: WavTokenizer) -> dict[str, torch.Tensor]:
    """The released generator keys (weight norm folded), fp16: what ``load_wavtokenizer`` reads."""
    return {k: v.detach().half().contiguous() for k, v in codec.state_dict().items()}


__all__ = ["CodecLoss", "codec_state_dict", "new_codec", "tiny_config", "to_codec_rate", "update_codebook",
           "wave_batches"]
