"""MTV text side: the structured prompt template (paper sec. 4.3) and T5-v1.1-XXL encoding.

The official conditioner (configs/cogvideox_5b.yaml ``FrozenT5Embedder``, max_length 226) pads
every prompt to 226 tokens and encodes them without an attention mask; the unconditional text is
a zero tensor (``force_uc_zero_embeddings=["txt"]``), not the encoding of "".
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from ..common.t5 import load_t5_encoder, t5_config_from_state_dict  # noqa: F401 (this system's T5 API)

TEXT_LENGTH = 226
COUNT_WORDS = ("No", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine", "Ten")


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    return text if not text or text.endswith((".", "!", "?")) else text + "."


def build_prompt(scene: str, people: Sequence[str] = (), speaker: int = 0) -> str:
    """Participant count, one ``PersonK: appearance`` entry each, the active speaker, the scene.

    ``speaker`` is 1-based; 0 means nobody speaks, and then only the scene description is given
    (the official "No conversation." examples).
    """
    people = [p for p in (" ".join(p.split()) for p in people) if p]
    if speaker < 0 or speaker > len(people):
        raise ValueError(f"active speaker {speaker} is not one of the {len(people)} described people")
    scene_part = f"Scene Description: {_sentence(scene)}".strip()
    if speaker == 0:
        return f"No conversation. {scene_part}".strip()
    count = COUNT_WORDS[len(people)] if len(people) < len(COUNT_WORDS) else str(len(people))
    persons = " ".join(f"Person{i}: {_sentence(p)}" for i, p in enumerate(people, start=1))
    return f"{count} person conversation. Persons: {persons} Person{speaker} is speaking. {scene_part}".strip()


def find_tokenizer(weights_path: str | Path) -> Path:
    """``tokenizer.json`` beside the weights (or in their folder)."""
    p = Path(weights_path)
    for cand in (p.parent / "tokenizer.json", p.with_suffix(".tokenizer.json"), p / "tokenizer.json"):
        if cand.is_file():
            return cand
    raise FileNotFoundError(
        f"no tokenizer.json beside {p.name}: put the t5-v1_1-xxl tokenizer.json in {p.parent}"
    )


def load_tokenizer(path: str | Path):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_file=str(path), pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


@torch.no_grad()
def encode_prompts(model, tokenizer, texts: Sequence[str], max_length: int = TEXT_LENGTH) -> torch.Tensor:
    """[B, max_length, d_model]: padded to max_length, encoded without a mask (official FrozenT5Embedder)."""
    tok = tokenizer(list(texts), padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
    device = next(model.parameters()).device
    return model(input_ids=tok.input_ids.to(device)).last_hidden_state.float()


def fit_text_length(context: torch.Tensor, length: int) -> torch.Tensor:
    """Context from elsewhere (e.g. ComfyUI's CONDITIONING) to the model's fixed text length."""
    if context.shape[1] >= length:
        return context[:, :length]
    pad = context.new_zeros(context.shape[0], length - context.shape[1], context.shape[2])
    return torch.cat([context, pad], dim=1)
