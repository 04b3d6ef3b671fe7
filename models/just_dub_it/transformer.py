"""The LTX-2 audio-video transformer (diffusers ``LTX2VideoTransformer3DModel``) loaded from the
native single-file checkpoint, wrapped for the in-context forwards: JUST-DUB-IT on LTX-2.0 and
Lightricks' DubIt on LTX-2.3 (the version is read from the file's keys; :mod:`.ltx23_forward`)."""
from __future__ import annotations

from typing import Any, Mapping

import torch
from diffusers.loaders.single_file_utils import convert_ltx2_transformer_to_diffusers
from diffusers.models.transformers.transformer_ltx2 import LTX2VideoTransformer3DModel
from torch import nn

from ..common.checkpoint import (
    CheckpointError,
    build_and_load,
    load_strict,
    meta_device,
    select,
)
from ..common.fp8 import Fp8Linear
from .attention_processor import CrossModalMasks, install_processors
from .config import diffusers_transformer_kwargs, native_transformer_config
from .formats import Fp8Layout, read_fp8_layout
from .ltx23_forward import ltx23_forward

TRANSFORMER_PREFIX = "model.diffusion_model."
# Stored under the transformer prefix but belonging to the Gemma text connectors.
CONNECTOR_PREFIXES = ("video_embeddings_connector.", "audio_embeddings_connector.")
# fp8 weights of a released file stay in fp8 here (the scope of memory.store_fp8); elsewhere they are
# multiplied out, so the small embedding/projection layers keep the compute dtype.
FP8_BLOCKS_PREFIX = TRANSFORMER_PREFIX + "transformer_blocks."


def transformer_state_dict(checkpoint: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Native single-file keys -> diffusers keys (one conversion table: diffusers' own)."""
    native = select(checkpoint, TRANSFORMER_PREFIX, strip=False)
    native = {k: v for k, v in native.items() if not k[len(TRANSFORMER_PREFIX):].startswith(CONNECTOR_PREFIXES)}
    if not native:
        raise CheckpointError(f"LTX-2 checkpoint: no '{TRANSFORMER_PREFIX}*' transformer keys found")
    converted = convert_ltx2_transformer_to_diffusers(dict(native))
    return {_diffusers_prompt_adaln(k): v for k, v in converted.items()}


# diffusers' single-file table predates 2.3: it leaves the prompt AdaLN under its native name.
_PROMPT_ADALN = {"prompt_adaln_single": "prompt_adaln", "audio_prompt_adaln_single": "audio_prompt_adaln"}


def _diffusers_prompt_adaln(key: str) -> str:
    head, dot, rest = key.partition(".")
    return _PROMPT_ADALN.get(head, head) + dot + rest


def transformer_keys(checkpoint: Mapping[str, torch.Tensor] | Fp8Layout) -> list[str]:
    """The transformer's native keys of a single file (connectors excluded), for version detection."""
    tensors = checkpoint.tensors if isinstance(checkpoint, Fp8Layout) else checkpoint
    return [k for k in tensors if k.startswith(TRANSFORMER_PREFIX)
            and not k[len(TRANSFORMER_PREFIX):].startswith(CONNECTOR_PREFIXES)]


def diffusers_to_native_key(key: str) -> str:
    """Inverse of diffusers' LTX-2 transformer key table (for writing files in the native layout)."""
    head, _, rest = key.partition(".")
    head = _NATIVE_TOP_LEVEL.get(head, head)
    key = f"{head}.{rest}" if rest else head
    for a, b in _NATIVE_ANYWHERE.items():
        key = key.replace(a, b)
    return TRANSFORMER_PREFIX + key


_NATIVE_TOP_LEVEL = {
    "proj_in": "patchify_proj", "audio_proj_in": "audio_patchify_proj",
    "time_embed": "adaln_single", "audio_time_embed": "audio_adaln_single",
    "av_cross_attn_video_scale_shift": "av_ca_video_scale_shift_adaln_single",
    "av_cross_attn_video_a2v_gate": "av_ca_a2v_gate_adaln_single",
    "av_cross_attn_audio_scale_shift": "av_ca_audio_scale_shift_adaln_single",
    "av_cross_attn_audio_v2a_gate": "av_ca_v2a_gate_adaln_single",
    "prompt_adaln": "prompt_adaln_single", "audio_prompt_adaln": "audio_prompt_adaln_single",
}
_NATIVE_ANYWHERE = {
    "video_a2v_cross_attn_scale_shift_table": "scale_shift_table_a2v_ca_video",
    "audio_a2v_cross_attn_scale_shift_table": "scale_shift_table_a2v_ca_audio",
    ".norm_q.": ".q_norm.", ".norm_k.": ".k_norm.",
}


def native_module_name(module: str) -> str:
    """A native module path (``transformer_blocks.0.attn1.to_q``) -> the diffusers module path."""
    probe = {f"{TRANSFORMER_PREFIX}{module}.weight": torch.empty(0)}
    (converted,) = convert_ltx2_transformer_to_diffusers(probe).keys()
    return converted[: -len(".weight")]


def build_transformer(kwargs: Mapping[str, Any]) -> LTX2VideoTransformer3DModel:
    return LTX2VideoTransformer3DModel(**kwargs)


def load_transformer(
    checkpoint: Mapping[str, torch.Tensor] | Fp8Layout,
    metadata: Mapping[str, str] | None,
    *,
    dtype: torch.dtype | None = None,
) -> "InContextTransformer":
    """bf16/fp32 files, and fp8 files (ComfyUI scaled fp8, mixed precision, plain e4m3 casts) whose
    block weights are kept bit for bit as :class:`Fp8Linear` with the file's scales."""
    layout = checkpoint if isinstance(checkpoint, Fp8Layout) else read_fp8_layout(
        checkpoint, metadata, context="LTX-2 transformer")
    # The version comes from the keys (LTX-2.3 adds gate logits and prompt AdaLN), never from the user.
    kwargs = diffusers_transformer_kwargs(native_transformer_config(metadata, transformer_keys(layout)))
    if not layout.quantized:
        sd = transformer_state_dict(layout.tensors)
        model = build_and_load(lambda: build_transformer(kwargs), sd, context="LTX-2 transformer", dtype=dtype)
    else:
        model = _load_fp8_transformer(layout, kwargs, dtype)
    return InContextTransformer(model.eval().requires_grad_(False))


def _load_fp8_transformer(layout: Fp8Layout, kwargs, dtype: torch.dtype | None) -> LTX2VideoTransformer3DModel:
    sd = transformer_state_dict(layout.dequantized(dtype, skip=(FP8_BLOCKS_PREFIX,)))
    kept = {k: s for k, s in layout.scales.items() if k.startswith(FP8_BLOCKS_PREFIX)}
    scales = transformer_state_dict(kept) if kept else {}
    sd = {k: (v.to(dtype) if dtype is not None and k not in scales and v.is_floating_point() else v)
          for k, v in sd.items()}
    for key, scale in scales.items():
        module = key[: -len(".weight")]
        sd[module + ".weight_fp8"] = sd.pop(key).view(torch.uint8)
        sd[module + ".weight_scale"] = scale
    with meta_device():
        model = build_transformer(kwargs)
        _fp8_linears_(model, [k[: -len(".weight")] for k in scales], bias_dtype=dtype)
    # dtype=None: the scales stay float32 (a bf16 scale would add up to 2^-9 relative error).
    load_strict(model, sd, context="LTX-2 transformer (fp8)", dtype=None, assign=True)
    return model


def _fp8_linears_(model: nn.Module, names: list[str], *, bias_dtype: torch.dtype | None) -> None:
    wrong = []
    for name in names:
        try:
            linear = model.get_submodule(name)
        except AttributeError:
            continue  # no such module: load_strict names the file's key as unexpected
        if not isinstance(linear, nn.Linear):
            wrong.append(f"{name} ({type(linear).__name__})")
            continue
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, Fp8Linear(
            linear.in_features, linear.out_features, linear.bias is not None,
            bias_dtype=bias_dtype or (linear.bias.dtype if linear.bias is not None else torch.float32)))
    if wrong:
        raise CheckpointError("LTX-2 transformer (fp8): fp8 weights for modules that are not linear layers: "
                              + ", ".join(wrong))


class InContextTransformer(nn.Module):
    """LTX-2 AV transformer called on token sequences with per-token timesteps, explicit positions
    and optional a2v / v2a isolation masks (JUST-DUB-IT paper 3.3; DubIt uses none).

    LTX-2.0 runs diffusers' forward (the JUST-DUB-IT convention: every AdaLN from the stream's own
    per-token timesteps). LTX-2.3 runs :func:`.ltx23_forward.ltx23_forward` (ltx-core 1.2.0), which
    also takes each stream's scalar ``sigma``."""

    def __init__(self, transformer: LTX2VideoTransformer3DModel):
        super().__init__()
        self.transformer = transformer
        self.masks = CrossModalMasks()
        install_processors(transformer, self.masks)

    @property
    def config(self):
        return self.transformer.config

    @property
    def dtype(self) -> torch.dtype:
        return self.transformer.proj_in.weight.dtype

    @property
    def version(self) -> str:
        return "2.3" if self.config.cross_attn_mod else "2.0"

    def forward(
        self,
        video_latent: torch.Tensor,
        audio_latent: torch.Tensor,
        video_timesteps: torch.Tensor,
        audio_timesteps: torch.Tensor,
        video_positions: torch.Tensor,
        audio_positions: torch.Tensor,
        video_context: torch.Tensor,
        audio_context: torch.Tensor,
        a2v_mask: torch.Tensor | None = None,
        v2a_mask: torch.Tensor | None = None,
        *,
        video_sigma: torch.Tensor | float | None = None,
        audio_sigma: torch.Tensor | float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Velocities [B, N, C] for video and audio tokens; timesteps are sigmas per token [B, N, 1].

        ``video_sigma`` / ``audio_sigma`` (LTX-2.3 only; scalar or [B]) are the streams' step sigmas
        (ltx_core ``Modality.sigma``), 0 for a frozen stream. Left out, each is the stream's largest
        per-token timestep, which is the same thing whenever one target token has denoise mask 1.
        """
        scale = self.config.timestep_scale_multiplier  # ltx_core embeds sigma * 1000
        dtype = self.dtype
        # Kept after the call: gradient checkpointing re-runs the blocks during backward.
        self.masks.a2v, self.masks.v2a = a2v_mask, v2a_mask
        if self.version == "2.3":
            b = video_latent.shape[0]
            return ltx23_forward(
                self.transformer, video_latent.to(dtype), audio_latent.to(dtype), video_timesteps.float(),
                audio_timesteps.float(), _stream_sigma(video_sigma, video_timesteps, b),
                _stream_sigma(audio_sigma, audio_timesteps, b), video_positions, audio_positions,
                video_context, audio_context)
        if video_sigma is not None or audio_sigma is not None:
            raise ValueError("video_sigma / audio_sigma are LTX-2.3 inputs; this is an LTX-2.0 transformer")
        video, audio = self.transformer(
            hidden_states=video_latent.to(dtype),
            audio_hidden_states=audio_latent.to(dtype),
            encoder_hidden_states=video_context.to(dtype),
            audio_encoder_hidden_states=audio_context.to(dtype),
            timestep=video_timesteps.flatten(1) * scale,
            audio_timestep=audio_timesteps.flatten(1) * scale,
            video_coords=video_positions,
            audio_coords=audio_positions,
            return_dict=False,
        )
        return video, audio

    def denoise(self, video_latent, audio_latent, video_timesteps, audio_timesteps, *args, **kwargs):
        """X0 prediction ``latent - velocity * timestep`` per token, in float32 (ltx_core X0Model)."""
        v_vel, a_vel = self(video_latent, audio_latent, video_timesteps, audio_timesteps, *args, **kwargs)
        v_den = video_latent.float() - v_vel.float() * video_timesteps.float()
        a_den = audio_latent.float() - a_vel.float() * audio_timesteps.float()
        return v_den, a_den


def _stream_sigma(sigma, timesteps: torch.Tensor, batch: int) -> torch.Tensor:
    if sigma is None:
        return timesteps.detach().float().flatten(1).amax(dim=1)
    sigma = torch.as_tensor(sigma, dtype=torch.float32, device=timesteps.device)
    return sigma.expand(batch) if sigma.numel() == 1 else sigma.reshape(batch)
