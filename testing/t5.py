"""A word-level tokenizer.json with the T5/umt5 special ids, for the tiny text encoders of MTV and Ovi."""
from __future__ import annotations

from pathlib import Path

# pad 0, eos 1, unk 2 as in T5 and umt5; 61 plain words after them (64 ids in all).
TINY_VOCAB = ["<pad>", "</s>", "<unk>"] + [f"w{i}" for i in range(61)]


def write_tiny_tokenizer(path: str | Path, words: list[str] | None = None) -> Path:
    """Unknown words -> <unk>, '</s>' appended; ``words`` extend the 64-id vocabulary."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {w: i for i, w in enumerate(TINY_VOCAB + list(words or []))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))
    return path
