"""LTX-2 prompt encoding: Gemma-3 hidden states (transformers) -> the two text connectors.

The connectors and the feature projection live in the LTX-2 single file
(``model.diffusion_model.{video,audio}_embeddings_connector.*``, ``text_embedding_projection.*``);
diffusers' ``LTX2TextConnectors`` implements both paths: LTX-2.0 (per-layer masked mean/range
normalisation, one shared projection to 3840, learnable registers for padding, video output masked)
and LTX-2.3 (``per_modality_projections``: per-token RMS norm over each layer's features, rescaled by
sqrt(width / 3840), separate video and audio projections with bias, 8-layer gated connectors at the
stream widths; ltx_core feature_extractor.py FeatureExtractorV2, embeddings_connector.py). Which one a
file holds is read from its keys (``text_embedding_projection.{video,audio}_aggregate_embed``).
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
    (r"^text_embedding_projection\.video_aggregate_embed\.", "video_text_proj_in."),
    (r"^text_embedding_projection\.audio_aggregate_embed\.", "audio_text_proj_in."),
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
    if "video_text_proj_in.weight" in sd:
        return _ltx23_connector_kwargs(sd, metadata)
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
        **_rope_kwargs(native),
    )


def _rope_kwargs(native: Mapping[str, Any]) -> dict[str, Any]:
    # ltx_core Embeddings1DConnectorConfigurator reads these from the transformer config.
    return dict(
        connector_rope_base_seq_len=list(native.get("connector_positional_embedding_max_pos", [1]))[0],
        rope_theta=float(native["positional_embedding_theta"]),
        rope_double_precision=native.get("frequencies_precision") == "float64",
        rope_type=native["rope_type"],
    )


def _ltx23_connector_kwargs(sd: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None) -> dict[str, Any]:
    """FeatureExtractorV2 + two connectors at the stream widths (encoder_configurator.py L163-209)."""
    native = native_transformer_config(metadata, version="2.3")
    video_proj, audio_proj = sd["video_text_proj_in.weight"], sd["audio_text_proj_in.weight"]
    caption = native["caption_channels"]  # Gemma-3's hidden size: 3840 for 12B
    if video_proj.shape[1] % caption or audio_proj.shape[1] != video_proj.shape[1]:
        raise CheckpointError(f"LTX-2.3 text projection: inputs {video_proj.shape[1]} / {audio_proj.shape[1]} are not "
                              f"one multiple of the Gemma width caption_channels={caption}")

    def stream(name: str, prefix: str) -> dict[str, Any]:
        registers = sd.get(f"{name}_connector.learnable_registers")
        return {
            f"{name}_connector_num_attention_heads": native[f"{prefix}connector_num_attention_heads"],
            f"{name}_connector_attention_head_dim": native[f"{prefix}connector_attention_head_dim"],
            f"{name}_connector_num_layers": len({k.split(".")[2] for k in sd
                                                 if k.startswith(f"{name}_connector.transformer_blocks.")}),
            f"{name}_connector_num_learnable_registers": None if registers is None else registers.shape[0],
            f"{name}_gated_attn": any(k.startswith(f"{name}_connector.") and ".to_gate_logits." in k for k in sd),
        }

    return dict(
        caption_channels=caption,
        text_proj_in_factor=video_proj.shape[1] // caption,
        per_modality_projections=True,
        proj_bias="video_text_proj_in.bias" in sd,
        video_hidden_dim=video_proj.shape[0],
        audio_hidden_dim=audio_proj.shape[0],
        **stream("video", ""), **stream("audio", "audio_"),
        **_rope_kwargs(native),
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
