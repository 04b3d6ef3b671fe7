"""Gemma-3 from ComfyUI's single file (``text_encoders/gemma_3_12B_it*.safetensors``) onto transformers'
``Gemma3TextModel``.

ComfyUI's layout (comfy/text_encoders/llama.py ``Gemma3_12B``, detected in comfy/sd.py by
``model.layers.47.self_attn.q_norm.weight``): the text model under ``model.`` with Hugging Face's own
module names, the SigLIP tower under ``vision_model.``, ``multi_modal_projector.*``, and the SentencePiece
tokenizer serialised into a uint8 tensor ``spiece_model`` (comfy/text_encoders/lt.py ``Gemma3_12BTokenizer``).
The file holds no config: sizes come from the weight shapes, the rest is Gemma-3 12B-it's config.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Mapping, Sequence

import torch

from ..common.checkpoint import CheckpointError, load_file, load_strict, meta_device, rename_keys, safetensors_metadata
from .formats import read_fp8_layout

TOKENIZER_KEY = "spiece_model"
# Other halves of the multimodal checkpoint (ComfyUI and Hugging Face names); LTX-2 encodes text only.
NON_TEXT_PREFIXES = ("vision_model.", "multi_modal_projector.", "model.vision_tower.", "vision_tower.",
                     "model.multi_modal_projector.")
# Tied to embed_tokens in Gemma-3; present in some exports.
TIED_KEYS = ("lm_head.weight",)
TEXT_RENAMES = (
    (r"^model\.language_model\.", ""),  # transformers >= 4.52 Gemma3ForConditionalGeneration
    (r"^language_model\.model\.", ""),  # older Gemma3ForConditionalGeneration
    (r"^model\.", ""),                  # ComfyUI / Gemma3ForCausalLM
)
# google/gemma-3-12b-it text_config (= ComfyUI Gemma3_12B_Config): what the shapes cannot tell.
GEMMA3_DEFAULTS = dict(
    rms_norm_eps=1e-6, hidden_activation="gelu_pytorch_tanh", max_position_embeddings=131072,
    sliding_window=1024, sliding_window_pattern=6, final_logit_softcapping=None, attn_logit_softcapping=None,
    rope_parameters={"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1_000_000.0},
                     "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0}},
    pad_token_id=0, eos_token_id=1, bos_token_id=2,
)
_HF_WEIGHT_NAME = re.compile(r"^(model|pytorch_model)(-\d+-of-\d+)?\.(safetensors|bin)$")


def is_hf_folder_file(path: str | Path) -> bool:
    """A weight shard of a Hugging Face folder (config.json beside it, named model*.safetensors)."""
    path = Path(path)
    return path.is_dir() or ((path.parent / "config.json").is_file() and bool(_HF_WEIGHT_NAME.match(path.name)))


def gemma_text_state_dict(checkpoint: Mapping[str, torch.Tensor], dtype: torch.dtype | None = None,
                          metadata: Mapping[str, str] | None = None) -> dict[str, torch.Tensor]:
    """``Gemma3TextModel`` keys; fp8 files multiplied out; unknown keys kept so the strict load names them."""
    text = {k: v for k, v in checkpoint.items()
            if k != TOKENIZER_KEY and k not in TIED_KEYS and not k.startswith(NON_TEXT_PREFIXES)}
    sd = read_fp8_layout(text, metadata, context="Gemma-3 text encoder").dequantized(dtype)
    if not any(k.endswith("self_attn.q_norm.weight") for k in sd):
        raise CheckpointError("Gemma-3 text encoder: no 'model.layers.*.self_attn.q_norm.weight' keys - not a Gemma-3 file")
    return rename_keys(sd, TEXT_RENAMES)


def gemma3_text_config(sd: Mapping[str, torch.Tensor], overrides: Mapping | None = None):
    """Sizes from the shapes (head_dim from q_norm), Gemma-3 12B-it's constants for the rest."""
    from transformers import Gemma3TextConfig

    vocab, hidden = sd["embed_tokens.weight"].shape
    head_dim = sd["layers.0.self_attn.q_norm.weight"].shape[0]
    kw = dict(GEMMA3_DEFAULTS)
    kw.update(
        vocab_size=vocab, hidden_size=hidden, head_dim=head_dim,
        num_hidden_layers=len({k.split(".")[1] for k in sd if k.startswith("layers.")}),
        num_attention_heads=sd["layers.0.self_attn.q_proj.weight"].shape[0] // head_dim,
        num_key_value_heads=sd["layers.0.self_attn.k_proj.weight"].shape[0] // head_dim,
        intermediate_size=sd["layers.0.mlp.gate_proj.weight"].shape[0],
        # ComfyUI scales attention by 1/sqrt(head_dim); Gemma-3 12B's query_pre_attn_scalar equals it (256).
        query_pre_attn_scalar=head_dim,
    )
    if overrides:
        if {"rope_theta", "rope_scaling", "rope_local_base_freq"} & set(overrides):
            kw.pop("rope_parameters")  # an older config.json spells RoPE out itself
        kw.update(overrides)
    return Gemma3TextConfig(**kw)


def _config_beside(path: Path) -> dict | None:
    file = path.parent / "config.json"
    if not file.is_file():
        return None
    config = json.loads(file.read_text())
    kind = str(config.get("model_type", "gemma3"))
    if not kind.startswith("gemma3"):  # e.g. a T5 or CLIP folder picked by mistake
        raise CheckpointError(f"{file.parent.name}: config.json describes a {kind!r} model; the LTX-2 text encoder is "
                              "Gemma-3 (model_type gemma3 / gemma3_text)")
    config = config.get("text_config", config)
    return {k: v for k, v in config.items() if not k.startswith(("architectures", "model_type", "transformers_version"))}


def load_gemma_text_model(checkpoint: Mapping[str, torch.Tensor], *, dtype: torch.dtype = torch.bfloat16,
                          metadata: Mapping[str, str] | None = None, config_overrides: Mapping | None = None):
    """A strict load onto ``Gemma3TextModel`` (every missing/unexpected/mis-shaped key named)."""
    from transformers.models.gemma3.modeling_gemma3 import Gemma3RotaryEmbedding, Gemma3TextModel

    sd = gemma_text_state_dict(checkpoint, dtype, metadata)
    try:
        config = gemma3_text_config(sd, config_overrides)
    except KeyError as exc:
        raise CheckpointError(f"Gemma-3 text encoder: key {exc} missing (needed to read the model size)") from exc
    with meta_device():
        model = Gemma3TextModel(config)
    load_strict(model, sd, context="Gemma-3 text encoder", dtype=dtype, assign=True)
    # Non-persistent buffers (RoPE tables, the sqrt(hidden) embedding scale) are rebuilt, not read.
    model.rotary_emb = Gemma3RotaryEmbedding(config)
    model.embed_tokens.register_buffer("embed_scale", torch.tensor(config.hidden_size ** 0.5), persistent=False)
    left = [n for n, b in model.named_buffers() if b.is_meta]
    if left:
        raise CheckpointError(f"Gemma-3 text encoder: buffers {left} were not rebuilt after loading")
    return model.eval().requires_grad_(False)


class SentencePieceGemmaTokenizer:
    """The tokenizer ComfyUI's Gemma3_12BTokenizer builds (lt.py): SentencePiece with BOS, no EOS,
    pad id 0; called like a Hugging Face tokenizer for the few arguments the encoder uses."""

    def __init__(self, model_proto: bytes):
        try:
            import sentencepiece
        except ImportError as exc:
            raise ImportError("reading the Gemma-3 tokenizer stored in the file needs the 'sentencepiece' package "
                              "(pip install sentencepiece; ComfyUI already requires it)") from exc
        self.sp = sentencepiece.SentencePieceProcessor(model_proto=model_proto)
        self.bos_token_id = self.sp.bos_id()
        self.pad_token_id = max(self.sp.pad_id(), 0)
        self.pad_token, self.eos_token = "<pad>", "<eos>"
        self.padding_side = "left"

    def __call__(self, texts: Sequence[str], *, padding="longest", max_length: int | None = None,
                 truncation: bool = False, add_special_tokens: bool = True, return_tensors="pt"):
        rows = [([self.bos_token_id] if add_special_tokens else []) + self.sp.encode(t) for t in texts]
        if truncation and max_length is not None:
            rows = [r[:max_length] for r in rows]
        width = max_length if padding == "max_length" and max_length is not None else max(map(len, rows))
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            span = slice(width - len(r), width) if self.padding_side == "left" else slice(0, len(r))
            ids[i, span] = torch.tensor(r, dtype=torch.long)
            mask[i, span] = 1
        return SimpleNamespace(input_ids=ids, attention_mask=mask)


def tokenizer_for(path: Path, checkpoint: Mapping[str, torch.Tensor]):
    """The file's own ``spiece_model``, else tokenizer.json / tokenizer.model beside the file (in its
    folder, a folder named after it, or ``tokenizer/``)."""
    if TOKENIZER_KEY in checkpoint:
        return SentencePieceGemmaTokenizer(checkpoint[TOKENIZER_KEY].to(torch.uint8).numpy().tobytes())
    for folder in (path.parent, path.parent / path.stem, path.parent / "tokenizer"):
        if (folder / "tokenizer.json").is_file():
            from transformers import AutoTokenizer, PreTrainedTokenizerFast

            if (folder / "tokenizer_config.json").is_file():
                return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            return PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), pad_token="<pad>",
                                           eos_token="<eos>", bos_token="<bos>", unk_token="<unk>")
        if (folder / "tokenizer.model").is_file():
            return SentencePieceGemmaTokenizer((folder / "tokenizer.model").read_bytes())
    raise FileNotFoundError(
        f"{path.name}: no Gemma-3 tokenizer - the file has no '{TOKENIZER_KEY}' entry (ComfyUI's files do), and no "
        f"tokenizer.json or tokenizer.model from google/gemma-3-12b-it was found in {path.parent}, "
        f"{path.parent / path.stem} or {path.parent / 'tokenizer'}")


def load_gemma_single_file(path: str | Path, *, dtype: torch.dtype = torch.bfloat16, device="cpu"):
    """(tokenizer, Gemma3TextModel) from one file; a config.json beside it overrides the 12B-it constants."""
    path = Path(path)
    checkpoint = load_file(path)
    tokenizer = tokenizer_for(path, checkpoint)
    meta = safetensors_metadata(path) if path.suffix == ".safetensors" else {}
    model = load_gemma_text_model(checkpoint, dtype=dtype, metadata=meta, config_overrides=_config_beside(path))
    return tokenizer, model.to(device)
