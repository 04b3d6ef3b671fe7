"""T5 text conditioning (AudioGen-Omni paper 3.2: T5-Base, 768-d token features with a mask)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch


@dataclass
class TextFeatures:
    features: torch.Tensor  # [B, L, D]
    mask: torch.Tensor  # [B, L] True = real token


class T5TextEncoder:
    """``transformers.T5EncoderModel`` plus its tokenizer; tokens padded/cut to ``max_length``."""

    def __init__(self, model, tokenizer=None, max_length: int = 77):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length

    @classmethod
    def from_folder(cls, folder: str | Path, *, dtype: Optional[torch.dtype] = None, device="cpu", max_length: int = 77):
        """A local Hugging Face folder (config.json, weights, tokenizer files); nothing is downloaded."""
        from transformers import AutoTokenizer, T5EncoderModel

        model = T5EncoderModel.from_pretrained(str(folder), local_files_only=True, torch_dtype=dtype).to(device)
        tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        return cls(model, tok, max_length)

    @classmethod
    def from_file(cls, path: str | Path, *, dtype: Optional[torch.dtype] = None, device="cpu", max_length: int = 77):
        """One safetensors file in T5's layout with ``<name>.tokenizer.json`` beside it (the pack's tiny default:
        a word-level tokenizer with T5's pad, end and unknown tokens)."""
        from transformers import PreTrainedTokenizerFast

        from ..common.t5 import load_t5_encoder

        tokenizer = Path(path).with_suffix(".tokenizer.json")
        if not tokenizer.is_file():
            raise FileNotFoundError(f"no {tokenizer.name} beside {Path(path).name}")
        tok = PreTrainedTokenizerFast(tokenizer_file=str(tokenizer), pad_token="<pad>", eos_token="</s>",
                                      unk_token="<unk>")
        return cls(load_t5_encoder(path, dtype=dtype, device=device), tok, max_length)

    @torch.no_grad()
    def encode_ids(self, ids: torch.Tensor, mask: torch.Tensor) -> TextFeatures:
        dev = next(self.model.parameters()).device
        out = self.model(input_ids=ids.to(dev), attention_mask=mask.to(dev)).last_hidden_state
        mask = mask.to(dev).bool()
        # Padding positions are zeroed: they are masked out of attention and pooling downstream anyway.
        return TextFeatures(out.float() * mask.unsqueeze(-1), mask)

    def encode(self, texts: Sequence[str]) -> TextFeatures:
        if self.tokenizer is None:
            raise ValueError("this T5 encoder has no tokenizer; use encode_ids")
        tok = self.tokenizer(list(texts), padding="max_length", truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        return self.encode_ids(tok["input_ids"], tok["attention_mask"].bool())
