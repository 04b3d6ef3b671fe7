"""The official MTV checkpoint (SAT/DeepSpeed) -> our module names, in one place.

Backbone keys become diffusers ``CogVideoXTransformer3DModel`` names (under ``backbone.``); the
audio modules keep their official names (under ``audio.``). Two SAT tensors are fused where
diffusers keeps them apart: the ``[q; k; v]`` projection and the 12-way adaLN modulation.
"""
from __future__ import annotations

from typing import Mapping

import torch

from ..common.checkpoint import CheckpointError, flatten_tensors, load_file, rename_keys, select

SAT_PREFIX = "model.diffusion_model."

# Renames (regex, replacement), applied in order to every kept key.
SAT_TO_OURS = (
    (r"^time_embed\.0\.", "backbone.time_embedding.linear_1."),
    (r"^time_embed\.2\.", "backbone.time_embedding.linear_2."),
    (r"^mixins\.patch_embed\.", "backbone.patch_embed."),
    (r"^mixins\.pos_embed\.pos_embedding$", "backbone.patch_embed.pos_embedding"),
    (r"^mixins\.adaln_layer\.query_layernorm_list\.(\d+)\.", r"backbone.transformer_blocks.\1.attn1.norm_q."),
    (r"^mixins\.adaln_layer\.key_layernorm_list\.(\d+)\.", r"backbone.transformer_blocks.\1.attn1.norm_k."),
    (r"^mixins\.final_layer\.norm_final\.", "backbone.norm_out.norm."),
    (r"^mixins\.final_layer\.adaLN_modulation\.1\.", "backbone.norm_out.linear."),
    (r"^mixins\.final_layer\.linear\.", "backbone.proj_out."),
    (r"^transformer\.final_layernorm\.", "backbone.norm_final."),
    (r"^transformer\.layers\.(\d+)\.input_layernorm\.", r"backbone.transformer_blocks.\1.norm1.norm."),
    (r"^transformer\.layers\.(\d+)\.post_attention_layernorm\.", r"backbone.transformer_blocks.\1.norm2.norm."),
    (r"^transformer\.layers\.(\d+)\.attention\.dense\.", r"backbone.transformer_blocks.\1.attn1.to_out.0."),
    (r"^transformer\.layers\.(\d+)\.mlp\.dense_h_to_4h\.", r"backbone.transformer_blocks.\1.ff.net.0.proj."),
    (r"^transformer\.layers\.(\d+)\.mlp\.dense_4h_to_h\.", r"backbone.transformer_blocks.\1.ff.net.2."),
    (r"^transformer\.layers\.(\d+)\.(audio_)", r"audio.layers.\1.\2"),
    (r"^transformer\.(audio_)", r"audio.\1"),
)
# Buffers the official model stores but recomputes or never reads.
SAT_DROPPED = ("mixins.pos_embed.freqs_sin", "mixins.pos_embed.freqs_cos", "transformer.position_embeddings.")
QKV = r"transformer.layers.{}.attention.query_key_value."
ADALN = r"mixins.adaln_layer.adaLN_modulations.{}.1."


def read_official_checkpoint(path) -> dict[str, torch.Tensor]:
    """``mp_rank_00_model_states.pt`` (tensors under ``module``) or a converted safetensors file.

    Always ``weights_only=True``; DeepSpeed/SAT files may also pickle an ``argparse.Namespace``
    of training arguments, which is allowed as plain data and then ignored.
    """
    import argparse

    raw = load_file(path, allowed_globals=[argparse.Namespace])
    if any(k.startswith("module.") for k in raw):
        raw = select(raw, "module.")
    return raw


def sat_network_state(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The denoiser's tensors: the ``model.diffusion_model.`` part when present (the engine file
    may also hold the text encoder or VAE), else the keys as given."""
    sd = flatten_tensors(dict(sd))
    return select(sd, SAT_PREFIX) if any(k.startswith(SAT_PREFIX) for k in sd) else dict(sd)


def _split_fused(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = dict(sd)
    i = 0
    while (QKV.format(i) + "weight") in out:
        for kind in ("weight", "bias"):
            fused = out.pop(QKV.format(i) + kind, None)
            if fused is None:
                continue
            for name, part in zip(("to_q", "to_k", "to_v"), fused.chunk(3, dim=0)):
                out[f"backbone.transformer_blocks.{i}.attn1.{name}.{kind}"] = part
        i += 1
    i = 0
    while (ADALN.format(i) + "weight") in out:
        for kind in ("weight", "bias"):
            c = out.pop(ADALN.format(i) + kind).chunk(12, dim=0)
            # SAT order: image (shift, scale, gate) x (msa, mlp), then text likewise; diffusers
            # norm1 = (shift, scale, gate, enc_shift, enc_scale, enc_gate) of the attention, norm2 of the MLP.
            out[f"backbone.transformer_blocks.{i}.norm1.linear.{kind}"] = torch.cat(c[0:3] + c[6:9])
            out[f"backbone.transformer_blocks.{i}.norm2.linear.{kind}"] = torch.cat(c[3:6] + c[9:12])
        i += 1
    return out


def is_converted(sd: Mapping[str, torch.Tensor]) -> bool:
    return any(k.startswith("backbone.") for k in sd) and any(k.startswith("audio.") for k in sd)


def convert_sat_to_ours(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official SAT names -> ours; a file already in our naming (``save_converted``) passes through."""
    if is_converted(sd):
        return dict(sd)
    sd = {k: v for k, v in sat_network_state(sd).items() if not k.startswith(SAT_DROPPED)}
    return rename_keys(_split_fused(sd), SAT_TO_OURS)


def require(sd: Mapping[str, torch.Tensor], key: str, context: str) -> torch.Tensor:
    if key not in sd:
        raise CheckpointError(f"{context}: expected key {key!r} is absent; is this an MTV checkpoint?")
    return sd[key]


def save_converted(model, path, dtype: torch.dtype | None = None) -> None:
    """Our naming as safetensors (cast to ``dtype`` when given), with the latent grid the learned positions
    were made for."""
    from safetensors.torch import save_file

    c = model.config
    meta = {"latent_height": str(c.latent_height), "latent_width": str(c.latent_width), "format": "soundstage-mtv"}
    save_file({k: (v if dtype is None else v.to(dtype)).detach().contiguous() for k, v in model.state_dict().items()},
              str(path), metadata=meta)
