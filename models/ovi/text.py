"""Ovi text side: the prompt format each checkpoint was trained on, and umt5-xxl encoding.

One umt5 pass encodes [prompt, video negative, audio negative]; each output is cut to its token
count (the fusion model zero-pads it back to text_len), as Wan's ``T5EncoderModel`` returns it.
"""
from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Mapping, Sequence

import torch

from ..common.checkpoint import rename_keys
from ..common.t5 import encoder_sizes, encoder_state_dict, load_encoder, read_state_dict

# Checkpoint prompt formats (ovi/ovi_fusion_engine.py NAME_TO_MODEL_SPECS_MAP).
MODEL_VARIANTS = ("720x720_5s", "960x960_5s", "960x960_10s")
SPEECH_OPEN, SPEECH_CLOSE = "<S>", "<E>"
AUDCAP_OPEN, AUDCAP_CLOSE = "<AUDCAP>", "<ENDAUDCAP>"
# Ovi's README default negatives.
DEFAULT_VIDEO_NEGATIVE = "jitter, bad hands, blur, distortion"
DEFAULT_AUDIO_NEGATIVE = "robotic, muffled, echo, distorted"


def uses_audcap_tags(variant: str) -> bool:
    if variant not in MODEL_VARIANTS:
        raise ValueError(f"unknown Ovi model variant {variant!r}; expected one of {MODEL_VARIANTS}")
    return variant == "720x720_5s"


def build_prompt(video: str, speech: Sequence[str] = (), audio: str = "", variant: str = "720x720_5s") -> str:
    """Scene text, each spoken line wrapped in ``<S>..<E>``, then the audio caption.

    ``video`` may already contain ``<S>..<E>`` lines in place; ``speech`` lines are appended after it.
    """
    parts = [video.strip()]
    parts += [f"{SPEECH_OPEN}{line.strip()}{SPEECH_CLOSE}" for line in speech if line.strip()]
    if audio.strip():
        cap = audio.strip()
        parts.append(f"{AUDCAP_OPEN}{cap}{AUDCAP_CLOSE}" if uses_audcap_tags(variant) else f"Audio: {cap}")
    else:
        uses_audcap_tags(variant)
    return " ".join(p for p in parts if p)


def clean_whitespace(text: str) -> str:
    """Wan tokenizer 'whitespace' cleaning (HTML unescape twice, collapse whitespace)."""
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip()


# Wan's .pth naming (models_t5_umt5-xxl-enc-bf16.pth) -> transformers UMT5EncoderModel naming.
WAN_T5_TO_HF = (
    (r"^token_embedding\.", "shared."),
    (r"^blocks\.(\d+)\.norm1\.", r"encoder.block.\1.layer.0.layer_norm."),
    (r"^blocks\.(\d+)\.attn\.", r"encoder.block.\1.layer.0.SelfAttention."),
    (r"^blocks\.(\d+)\.pos_embedding\.embedding\.", r"encoder.block.\1.layer.0.SelfAttention.relative_attention_bias."),
    (r"^blocks\.(\d+)\.norm2\.", r"encoder.block.\1.layer.1.layer_norm."),
    (r"^blocks\.(\d+)\.ffn\.gate\.0\.", r"encoder.block.\1.layer.1.DenseReluDense.wi_0."),
    (r"^blocks\.(\d+)\.ffn\.fc1\.", r"encoder.block.\1.layer.1.DenseReluDense.wi_1."),
    (r"^blocks\.(\d+)\.ffn\.fc2\.", r"encoder.block.\1.layer.1.DenseReluDense.wo."),
    (r"^norm\.", "encoder.final_layer_norm."),
)


def to_hf_umt5(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Either naming -> UMT5EncoderModel keys (decoder and LM head dropped; tied embeddings filled)."""
    if "token_embedding.weight" in sd:
        sd = rename_keys(sd, WAN_T5_TO_HF)
    return encoder_state_dict(sd)


def umt5_config_from_state_dict(sd: Mapping[str, torch.Tensor]):
    from transformers import UMT5Config

    sizes, _ = encoder_sizes(sd, "umt5 encoder")
    # umt5-xxl: gated tanh-GELU FFN, no attention scaling, eps 1e-6, 128 max distance (Wan t5.py).
    return UMT5Config(**sizes, feed_forward_proj="gated-gelu", dense_act_fn="gelu_new", is_gated_act=True)


def load_umt5(source, dtype: torch.dtype | None = None, device="cpu"):
    """UMT5EncoderModel from an HF-format or Wan ``.pth`` state dict (strict)."""
    from transformers import UMT5EncoderModel

    sd = to_hf_umt5(read_state_dict(source))
    return load_encoder(UMT5EncoderModel, umt5_config_from_state_dict(sd), sd, context="umt5 text encoder",
                        dtype=dtype, device=device)


def load_tokenizer(path: str | Path):
    """A local tokenizer: a ``tokenizer.json`` file or a folder holding one (or spiece.model)."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    path = Path(path)
    if path.is_file():
        # umt5's special tokens; a bare tokenizer.json does not name them.
        return PreTrainedTokenizerFast(tokenizer_file=str(path), pad_token="<pad>", eos_token="</s>",
                                       unk_token="<unk>")
    if path.is_dir():
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    raise FileNotFoundError(f"tokenizer not found: {path}")


class Umt5TextEncoder:
    """Tokenize (pad to ``text_len``, truncate) and encode; outputs cut to each prompt's length."""

    def __init__(self, model, tokenizer, text_len: int = 512):
        self.model, self.tokenizer, self.text_len = model, tokenizer, text_len

    @torch.no_grad()
    def encode(self, texts: Sequence[str]) -> list[torch.Tensor]:
        texts = [clean_whitespace(t) for t in texts]
        tok = self.tokenizer(texts, padding="max_length", truncation=True, max_length=self.text_len,
                             return_tensors="pt", add_special_tokens=True)
        device = next(self.model.parameters()).device
        ids, mask = tok["input_ids"].to(device), tok["attention_mask"].to(device)
        hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        lens = mask.gt(0).sum(1).tolist()
        return [h[:n].float().cpu() for h, n in zip(hidden, lens)]
