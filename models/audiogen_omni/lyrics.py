"""Lyrics/transcript stream (AudioGen-Omni paper 3.2).

Text -> graphemes (Roman scripts) or phonemes (other scripts, via phonemizer + espeak-ng) -> tokens
-> learned 768-d embeddings padded to the frame budget with a mask -> sinusoidal absolute positions
(up to 4000) -> ConvNeXt-V2 blocks that respect the mask. Duration-free, after F5-TTS's text path.
"""
from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import nn

from .layers import sinusoidal_positions

MAX_POSITIONS = 4000  # paper 3.2

# espeak-ng voices for scripts that are phonemised rather than spelled.
SCRIPT_LANGUAGE = {
    "CJK": "cmn", "HIRAGANA": "ja", "KATAKANA": "ja", "HANGUL": "ko", "CYRILLIC": "ru", "ARABIC": "ar",
    "DEVANAGARI": "hi", "GREEK": "el", "HEBREW": "he", "THAI": "th",
}


def script_of(text: str) -> str:
    """"LATIN" when every letter is Roman, else the first non-Roman script seen."""
    for ch in text:
        if not ch.isalpha():
            continue
        name = unicodedata.name(ch, "")
        if name.startswith("LATIN"):
            continue
        for script in SCRIPT_LANGUAGE:
            if name.startswith(script):
                return script
        return "OTHER"
    return "LATIN"


def phonemize(text: str, language: str) -> str:
    """IPA through espeak-ng (the library bundled by espeakng-loader, so no system install)."""
    import espeakng_loader
    from phonemizer import phonemize as _phonemize
    from phonemizer.backend.espeak.wrapper import EspeakWrapper

    EspeakWrapper.set_library(espeakng_loader.get_library_path())
    os.environ.setdefault("ESPEAK_DATA_PATH", espeakng_loader.get_data_path())
    return _phonemize(text, language=language, backend="espeak", strip=True, preserve_punctuation=True,
                      with_stress=True)


def to_symbols(text: str, language: Optional[str] = None) -> str:
    """Graphemes for Roman scripts, phonemes for the rest (paper 3.2)."""
    script = script_of(text)
    if script == "LATIN" and language is None:
        return text
    lang = language or SCRIPT_LANGUAGE.get(script)
    if lang is None:
        raise ValueError(f"no phonemizer language known for script {script}; pass language=")
    return phonemize(text, lang)


class LyricsTokenizer:
    """Symbols -> ids. A VoiceBPE ``tokenizer.json`` (HF tokenizers) when given, else UTF-8 bytes.

    Id 0 is reserved for padding, so real tokens start at 1.
    """

    def __init__(self, tokenizer_file: Optional[str | Path] = None):
        self._bpe = None
        if tokenizer_file is not None:
            from tokenizers import Tokenizer

            self._bpe = Tokenizer.from_file(str(tokenizer_file))
        self.vocab_size = (self._bpe.get_vocab_size() if self._bpe else 256) + 1

    def encode(self, text: str, language: Optional[str] = None) -> list[int]:
        symbols = to_symbols(text, language)
        ids = self._bpe.encode(symbols).ids if self._bpe else list(symbols.encode("utf-8"))
        return [i + 1 for i in ids]

    def batch(self, texts: Sequence[str], frames: int, language: Optional[str] = None):
        """Ids padded (or cut) to the frame budget: ``[B, frames]`` long and its bool mask."""
        ids = torch.zeros(len(texts), frames, dtype=torch.long)
        for b, text in enumerate(texts):
            seq = self.encode(text, language)[:frames]
            ids[b, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        return ids, ids > 0


class GRN(nn.Module):
    """ConvNeXt-V2 global response normalisation over time (channels last)."""

    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gx = torch.norm(x, p=2, dim=1, keepdim=True)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        return self.gamma * (x * nx) + self.beta + x


class ConvNeXtV2Block(nn.Module):
    def __init__(self, dim: int, hidden: int, kernel_size: int = 7):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.grn = GRN(hidden)
        self.pwconv2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, keep: Optional[torch.Tensor]) -> torch.Tensor:
        h = x if keep is None else x * keep  # padding contributes nothing to the conv or the GRN norm
        h = self.dwconv(h.transpose(1, 2)).transpose(1, 2)
        h = self.act(self.pwconv1(self.norm(h)))
        h = h if keep is None else h * keep
        h = self.pwconv2(self.grn(h))
        out = x + h
        return out if keep is None else out * keep


@dataclass(frozen=True)
class LyricsEncoderConfig:
    vocab_size: int = 257
    dim: int = 768  # paper 3.2
    blocks: int = 4
    hidden_mult: int = 2  # F5-TTS text ConvNeXt-V2 width
    max_positions: int = MAX_POSITIONS


class LyricsEncoder(nn.Module):
    def __init__(self, cfg: LyricsEncoderConfig = LyricsEncoderConfig()):
        super().__init__()
        self.config = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.blocks = nn.ModuleList([ConvNeXtV2Block(cfg.dim, cfg.dim * cfg.hidden_mult) for _ in range(cfg.blocks)])

    def forward(self, ids: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``ids`` [B, L] (0 = padding) -> frame-aligned features [B, L, dim], zero at padding."""
        if mask is None:
            mask = ids > 0
        keep = mask.unsqueeze(-1).to(self.embed.weight.dtype)
        length = ids.shape[1]
        pos_idx = torch.arange(length, device=ids.device).clamp_max(self.config.max_positions - 1)
        pos = sinusoidal_positions(self.config.max_positions, self.config.dim, device=ids.device)[pos_idx]
        x = (self.embed(ids) + pos.to(keep.dtype)) * keep
        for blk in self.blocks:
            x = blk(x, keep)
        return x
