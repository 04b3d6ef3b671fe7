"""WavTokenizer (Ji et al., 2024): a 24 kHz single-codebook audio tokenizer.

Encoder: SEANet + LSTM -> one VQ codebook (4096 codes in the releases). Decoder: the codebook
vectors -> Vocos backbone -> ISTFT head. The released Lightning ``.ckpt`` is loaded directly:
its ``state_dict`` generator keys (``feature_extractor.encodec.*``, ``backbone.*``, ``head.*``)
are this module's keys once weight norm is folded; discriminator/loss keys are dropped.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from ..checkpoint import CheckpointError, build_and_load, fold_weight_norm, load_file, select
from .wavtokenizer_seanet import ResidualVectorQuantizer, SEANetDecoder, SEANetEncoder
from .wavtokenizer_vocos import ISTFTHead, VocosBackbone

SAMPLE_RATE = 24000
# from_pretrained0802 keeps only these; everything else in the .ckpt is GAN/loss state.
GENERATOR_PREFIXES = ("feature_extractor.", "backbone.", "head.")


@dataclass
class WavTokenizerConfig:
    # Encoder downsampling ratios in decoder order (configs' ``dowmsamples``).
    ratios: list[int] = field(default_factory=lambda: [8, 5, 4, 2])
    # EncodecFeatures hard-codes 512 / 32; they are parameters here so tiny models fit.
    dimension: int = 512
    n_filters: int = 32
    bins: int = 4096
    lstm_layers: int = 2
    # EncodecFeatures always builds the (unused) SEANet decoder with these ratios.
    decoder_ratios: list[int] = field(default_factory=lambda: [8, 5, 4, 2])
    backbone_dim: int = 768
    intermediate_dim: int = 2304
    num_layers: int = 12
    adanorm_num_embeddings: int = 4
    n_fft: int = 1280
    hop_length: int = 320
    sample_rate: int = SAMPLE_RATE

    @property
    def token_rate(self) -> float:
        return self.sample_rate / self.hop_length

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def preset(cls, tokens_per_second: int) -> "WavTokenizerConfig":
        """The released configs (configs/wavtokenizer_smalldata_frame{75,40}_...yaml)."""
        if tokens_per_second == 75:
            return cls(ratios=[8, 5, 4, 2], n_fft=1280, hop_length=320)
        if tokens_per_second == 40:
            return cls(ratios=[6, 5, 5, 4], n_fft=2400, hop_length=600)
        raise ValueError(f"WavTokenizer has 40 and 75 tokens/s releases, not {tokens_per_second}")

    @classmethod
    def from_state_dict(cls, sd: Mapping[str, torch.Tensor]) -> "WavTokenizerConfig":
        """Read every size from the (converted) weights, so any release or tiny test file loads."""
        enc = "feature_extractor.encodec.encoder.model."
        dec = "feature_extractor.encodec.decoder.model."

        def conv_kernels(prefix: str, suffix: str) -> dict[int, tuple]:
            pat = re.compile(re.escape(prefix) + r"(\d+)\." + re.escape(suffix) + r"$")
            return {int(m.group(1)): tuple(v.shape) for k, v in sd.items() if (m := pat.match(k))}

        try:
            enc_convs = conv_kernels(enc, "conv.conv.weight")
            first = enc_convs[min(enc_convs)]
            # Between the input conv and the output conv, every top-level conv downsamples, kernel = 2*ratio.
            strided = [s for i, s in sorted(enc_convs.items()) if min(enc_convs) < i < max(enc_convs)]
            ratios = [s[2] // 2 for s in strided][::-1]
            dec_tr = conv_kernels(dec, "convtr.convtr.weight")
            decoder_ratios = [s[2] // 2 for _, s in sorted(dec_tr.items())]
            codebook = sd["feature_extractor.encodec.quantizer.vq.layers.0._codebook.embed"]
            lstm_layers = len({k for k in sd if k.startswith(enc) and ".lstm.weight_ih_l" in k})
            embed = sd["backbone.embed.weight"]
            layers = {int(m.group(1)) for k in sd if (m := re.match(r"backbone\.convnext\.(\d+)\.", k))}
            n_fft = sd["head.out.weight"].shape[0] - 2
            if "head.istft.window" in sd and sd["head.istft.window"].shape[0] != n_fft:
                raise CheckpointError("head.istft.window length does not match head.out")
            return cls(
                ratios=ratios,
                dimension=codebook.shape[1],
                n_filters=first[0],
                bins=codebook.shape[0],
                lstm_layers=lstm_layers,
                decoder_ratios=decoder_ratios,
                backbone_dim=embed.shape[0],
                intermediate_dim=sd["backbone.convnext.0.pwconv1.weight"].shape[0],
                num_layers=len(layers),
                adanorm_num_embeddings=sd["backbone.norm.scale.weight"].shape[0],
                n_fft=n_fft,
                # The head's hop equals the encoder's total stride: one STFT frame per token.
                hop_length=math.prod(ratios),
            )
        except (KeyError, ValueError, IndexError) as exc:
            raise CheckpointError(f"not a WavTokenizer checkpoint: cannot read its sizes ({exc!r})") from exc


class EncodecModel(nn.Module):
    def __init__(self, cfg: WavTokenizerConfig):
        super().__init__()
        common = dict(dimension=cfg.dimension, n_filters=cfg.n_filters, lstm=cfg.lstm_layers)
        self.encoder = SEANetEncoder(ratios=cfg.ratios, **common)
        self.decoder = SEANetDecoder(ratios=cfg.decoder_ratios, **common)
        self.quantizer = ResidualVectorQuantizer(cfg.dimension, cfg.bins)


class EncodecFeatures(nn.Module):
    def __init__(self, cfg: WavTokenizerConfig):
        super().__init__()
        self.encodec = EncodecModel(cfg)


class WavTokenizer(nn.Module):
    """24 kHz mono waveform <-> one stream of integer tokens."""

    def __init__(self, cfg: WavTokenizerConfig):
        super().__init__()
        self.config = cfg
        self.feature_extractor = EncodecFeatures(cfg)
        self.backbone = VocosBackbone(cfg.dimension, cfg.backbone_dim, cfg.intermediate_dim, cfg.num_layers,
                                      cfg.adanorm_num_embeddings)
        self.head = ISTFTHead(cfg.backbone_dim, cfg.n_fft, cfg.hop_length)

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def codebook_size(self) -> int:
        return self.config.bins

    def _bandwidth(self, device) -> torch.Tensor:
        # The released models are trained with one bandwidth; id 0 is the one used at inference.
        return torch.zeros(1, dtype=torch.long, device=device)

    def encode_features(self, wav: torch.Tensor) -> torch.Tensor:
        """wav [B, N] -> SEANet output [B, dimension, T] (before quantisation)."""
        return self.feature_extractor.encodec.encoder(wav.unsqueeze(1))

    def encode(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """wav [B, N] -> (quantised features [B, D, T], codes [1, B, T])."""
        q = self.feature_extractor.encodec.quantizer
        codes = q.encode(self.encode_features(wav))
        return q.decode(codes), codes

    def codes_to_features(self, codes: torch.Tensor) -> torch.Tensor:
        return self.feature_extractor.encodec.quantizer.decode(codes)

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        """features [B, D, T] -> wav [B, hop*T]."""
        x = self.backbone(features, self._bandwidth(features.device))
        return self.head(x)

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, T] or [1, B, T] -> wav [B, hop*T]."""
        return self.decode(self.codes_to_features(codes))


def convert_wavtokenizer_state_dict(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Released ``.ckpt`` (flattened) -> this module's keys: strip ``state_dict.``, keep the
    generator, fold SEANet weight norm."""
    if any(k.startswith("state_dict.") for k in sd):
        sd = select(sd, "state_dict.")
    kept = {k: v for k, v in sd.items() if k.startswith(GENERATOR_PREFIXES)}
    if not kept:
        raise CheckpointError("no WavTokenizer generator keys (feature_extractor./backbone./head.) found")
    return fold_weight_norm(kept)


def load_wavtokenizer(source: str | Path | Mapping[str, torch.Tensor], *, config: WavTokenizerConfig | None = None,
                      dtype: torch.dtype | None = None) -> WavTokenizer:
    """Build a WavTokenizer from a released ``.ckpt``/safetensors file or an already-read state dict."""
    raw = load_file(source) if isinstance(source, (str, Path)) else dict(source)
    sd = convert_wavtokenizer_state_dict(raw)
    cfg = config or WavTokenizerConfig.from_state_dict(sd)
    name = Path(source).name if isinstance(source, (str, Path)) else "state dict"
    model = build_and_load(lambda: WavTokenizer(cfg), sd, context=f"WavTokenizer ({name})", dtype=dtype)
    return model.eval()
