"""BPE text tokenizer (paper 3.2), trained and saved with ``tokenizers`` beside the checkpoint."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch

PAD, UNK = "<pad>", "<unk>"


def tokenizer_path_for(checkpoint: str | Path) -> Path:
    """``model.safetensors`` -> ``model.tokenizer.json`` (several checkpoints may share a folder)."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.stem + ".tokenizer.json")


def train_bpe(texts: Iterable[str], vocab_size: int):
    """Byte-level BPE: any language and any character encodes, with no unknown bytes."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[PAD, UNK],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    return tok


def load_tokenizer(path: str | Path):
    from tokenizers import Tokenizer

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"BPE tokenizer not found: {path} (it is saved beside the DualDub checkpoint)")
    return Tokenizer.from_file(str(path))


def encode_text(tokenizer, text: str, vocab_size: int) -> torch.Tensor:
    """Text -> ids [L] (at least one id, so the LM always has a text segment)."""
    ids = tokenizer.encode(text).ids or [tokenizer.token_to_id(PAD)]
    if max(ids) >= vocab_size:
        raise ValueError(f"tokenizer has {tokenizer.get_vocab_size()} tokens but the model only {vocab_size}")
    return torch.tensor(ids, dtype=torch.long)
