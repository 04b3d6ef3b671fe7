"""LTX-2 prompt encoding: Gemma-3 hidden states (transformers) -> the two text connectors.

The connectors and the feature projection live in the LTX-2 single file
(``model.diffusion_model.{video,audio}_embeddings_connector.*``, ``text_embedding_projection.*``);
diffusers' ``LTX2TextConnectors`` implements the LTX-2.0 path (per-layer masked mean/range
normalisation, shared projection, learnable registers for padding, video output masked).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import torch

from ..common.checkpoint import CheckpointError, build_and_load, rename_keys, select
from .config import native_transformer_config
from .gemma_file import is_hf_folder_file, load_gemma_single_file

if TYPE_CHECKING:
    from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors

CONNECTOR_RENAMES = (
    (r"^model\.diffusion_model\.video_embeddings_connector\.", "video_connector."),
    (r"^model\.diffusion_model\.audio_embeddings_connector\.", "audio_connector."),
    (r"^text_embedding_projection\.aggregate_embed\.", "text_proj_in."),
    (r"\.transformer_1d_blocks\.", ".transformer_blocks."),
    (r"\.q_norm\.", ".norm_q."),
    (r"\.k_norm\.", ".norm_k."),
)
# ltx_core Embeddings1DConnector defaults (not stored in the file's config): 30 heads x 128.
CONNECTOR_HEADS, CONNECTOR_HEAD_DIM = 30, 128
# JUST-DUB-IT / diffusers LTX-2: Gemma prompts are left-padded to 1024 tokens.
MAX_PROMPT_TOKENS = 1024


def connector_state_dict(checkpoint: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    sd = {
        **select(checkpoint, "model.diffusion_model.video_embeddings_connector.", strip=False),
        **select(checkpoint, "model.diffusion_model.audio_embeddings_connector.", strip=False),
        **select(checkpoint, "text_embedding_projection.", strip=False),
    }
    if not sd:
        raise CheckpointError("LTX-2 checkpoint: no text connector keys (video_embeddings_connector / text_embedding_projection)")
    return rename_keys(sd, CONNECTOR_RENAMES)


def connector_kwargs(sd: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None) -> dict[str, Any]:
    native = native_transformer_config(metadata)
    proj = sd["text_proj_in.weight"]
    caption = proj.shape[0]
    layers = len({k.split(".")[2] for k in sd if k.startswith("video_connector.transformer_blocks.")})
    registers = sd.get("video_connector.learnable_registers")
    head_dim = native.get("connector_attention_head_dim", CONNECTOR_HEAD_DIM)
    heads = native.get("connector_num_attention_heads", CONNECTOR_HEADS)
    return dict(
        caption_channels=caption,
        text_proj_in_factor=proj.shape[1] // caption,
        video_connector_num_attention_heads=heads, video_connector_attention_head_dim=head_dim,
        audio_connector_num_attention_heads=heads, audio_connector_attention_head_dim=head_dim,
        video_connector_num_layers=layers, audio_connector_num_layers=layers,
        video_connector_num_learnable_registers=None if registers is None else registers.shape[0],
        audio_connector_num_learnable_registers=None if registers is None else registers.shape[0],
        # ltx_core Embeddings1DConnectorConfigurator reads these from the transformer config.
        connector_rope_base_seq_len=list(native.get("connector_positional_embedding_max_pos", [1]))[0],
        rope_theta=float(native["positional_embedding_theta"]),
        rope_double_precision=native.get("frequencies_precision") == "float64",
        rope_type=native["rope_type"],
    )


def load_text_connectors(checkpoint, metadata=None, *, dtype=None) -> LTX2TextConnectors:
    from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors  # heavy: imported where used

    sd = connector_state_dict(checkpoint)
    kw = connector_kwargs(sd, metadata)
    return build_and_load(lambda: LTX2TextConnectors(**kw), sd, context="LTX-2 text connectors", dtype=dtype).eval().requires_grad_(False)


@dataclass
class GemmaEncoder:
    tokenizer: Any
    model: Any

    @property
    def device(self):
        return next(self.model.parameters()).device


def load_gemma(path: str | Path, *, dtype: torch.dtype = torch.bfloat16, device="cpu") -> GemmaEncoder:
    """Gemma-3 from a Hugging Face folder (config.json, tokenizer, model*.safetensors; the folder or any
    file in it) or from one file in ComfyUI's layout (``gemma_3_12B_it.safetensors``); never the Hub."""
    from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoTokenizer

    path = Path(path)
    if path.is_file() and not is_hf_folder_file(path):
        return GemmaEncoder(*load_gemma_single_file(path, dtype=dtype, device=device))
    if path.is_file():
        path = path.parent
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: expected a Gemma-3 folder with config.json (Hugging Face layout) "
                                "or a single Gemma-3 .safetensors file (ComfyUI's gemma_3_12B_it.safetensors)")
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    loader = AutoModelForImageTextToText if getattr(config, "vision_config", None) is not None else AutoModel
    model = loader.from_pretrained(str(path), dtype=dtype, local_files_only=True).to(device).eval().requires_grad_(False)
    return GemmaEncoder(tokenizer, model)


@torch.no_grad()
def gemma_hidden_states(encoder: GemmaEncoder, prompts: list[str], max_tokens: int = MAX_PROMPT_TOKENS):
    """([B, T, D, layers+1] every hidden state, [B, T] mask), prompts left-padded like ltx_core."""
    tok = encoder.tokenizer
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    batch = tok([p.strip() for p in prompts], padding="max_length", max_length=max_tokens, truncation=True,
                add_special_tokens=True, return_tensors="pt")
    ids, mask = batch.input_ids.to(encoder.device), batch.attention_mask.to(encoder.device)
    out = encoder.model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    return torch.stack(out.hidden_states, dim=-1), mask


@torch.no_grad()
def encode_prompts(encoder: GemmaEncoder, connectors: LTX2TextConnectors, prompts: list[str],
                   max_tokens: int = MAX_PROMPT_TOKENS) -> tuple[torch.Tensor, torch.Tensor]:
    """(video context, audio context), each [B, max_tokens, caption_channels]."""
    hidden, mask = gemma_hidden_states(encoder, prompts, max_tokens)
    param = next(connectors.parameters())
    video, audio, _ = connectors(hidden.to(param.device, param.dtype), mask.to(param.device), padding_side="left")
    return video, audio
