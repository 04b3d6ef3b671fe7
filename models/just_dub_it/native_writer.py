"""Writing LTX-2.0 parts (diffusers modules) as the native single file Lightricks ships, and Gemma-3 as
ComfyUI's single file: the inverse of the loaders' key renames.

Each inverse is derived from the loader's own forward table and checked against it: the pack's regex tables
(vocoder, text connectors, Gemma) are turned around rule by rule; diffusers' LTX-2 VAE tables live inside
its converter functions, so their inverse is read by probing the converter with the native module prefixes.
Whatever is written is converted forward again and must give back exactly the module's keys, so a file this
writes is one the strict loaders read.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from diffusers.loaders.single_file_utils import convert_ltx2_audio_vae_to_diffusers, convert_ltx2_vae_to_diffusers

from ..common.checkpoint import CheckpointError, rename_keys
from .codecs import AUDIO_VAE_PREFIX, VIDEO_VAE_PREFIX, VOCODER_PREFIX, VOCODER_RENAMES, audio_vae_state_dict, \
    video_vae_state_dict, vocoder_state_dict
from .gemma_file import TEXT_RENAMES, TOKENIZER_KEY, gemma_text_state_dict
from .text import CONNECTOR_RENAMES, connector_state_dict
from .transformer import diffusers_to_native_key, transformer_state_dict

_LITERAL = re.compile(r"^(\^?)((?:\\.|[^\\^$.*+?()\[\]{}|])*)$")  # a regex that matches one fixed string


def invert_renames(table: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The inverse of a ``rename_keys`` table whose patterns are fixed strings (optionally anchored with ``^``)
    and whose replacements hold no group references: each rule turned around, in reverse order."""
    out = []
    for pattern, replacement in reversed(table):
        m = _LITERAL.match(pattern)
        if m is None or "\\" in replacement.replace("\\.", ""):
            raise ValueError(f"rename rule {pattern!r} -> {replacement!r} is not a fixed-string rule")
        anchor, literal = m.group(1), re.sub(r"\\(.)", r"\1", m.group(2))
        out.append((anchor + re.escape(replacement), literal.replace("\\", "\\\\")))
    return out


def probe_inverse(forward: Callable[[dict], dict], fragments: Sequence[str]) -> list[tuple[str, str]]:
    """(converted prefix, native prefix) pairs, longest first, read by converting ``fragment + probe`` keys
    with the forward converter; a key is inverted by its longest matching converted prefix."""
    table = {}
    for fragment in fragments:
        (converted,) = forward({fragment + "probe": torch.empty(0)}).keys()
        table[converted[: -len("probe")]] = fragment
    return sorted(table.items(), key=lambda kv: -len(kv[0]))


def _by_prefix(sd: Mapping[str, torch.Tensor], table: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in sd.items():
        converted, native = next(((c, n) for c, n in table if key.startswith(c)), (None, None))
        if converted is None:
            raise CheckpointError(f"no native name for {key!r}")
        out[native + key[len(converted):]] = value
    return out


def _checked(native: dict[str, torch.Tensor], module: torch.nn.Module, forward, part: str) -> dict[str, torch.Tensor]:
    """``native`` as written, after checking that the loader's conversion gives back the module's own keys."""
    want = set(module.state_dict())
    got = set(forward(dict(native)))
    if got != want:
        raise CheckpointError(f"LTX-2 writer, {part}: the loader would read {sorted(got ^ want)[:8]} differently "
                              f"({len(got - want)} unexpected, {len(want - got)} missing)")
    return native


def video_vae_native(vae) -> dict[str, torch.Tensor]:
    """``AutoencoderKLLTX2Video`` (2.0 layout) -> ``vae.*`` keys (ltx_core's flat block indices)."""
    cfg = vae.config
    fragments = [VIDEO_VAE_PREFIX, VIDEO_VAE_PREFIX + "per_channel_statistics.mean-of-means",
                 VIDEO_VAE_PREFIX + "per_channel_statistics.std-of-means"]
    for part, blocks, count in (("encoder", "down_blocks", 2 * len(cfg.block_out_channels) + 1),
                                ("decoder", "up_blocks", 2 * len(cfg.decoder_block_out_channels) + 1)):
        for i in range(count):
            fragments += [f"{VIDEO_VAE_PREFIX}{part}.{blocks}.{i}.", f"{VIDEO_VAE_PREFIX}{part}.{blocks}.{i}.res_blocks."]
    table = probe_inverse(convert_ltx2_vae_to_diffusers, fragments)
    return _checked(_by_prefix(vae.state_dict(), table), vae, video_vae_state_dict, "video VAE")


def audio_vae_native(vae) -> dict[str, torch.Tensor]:
    fragments = [AUDIO_VAE_PREFIX, AUDIO_VAE_PREFIX + "per_channel_statistics.mean-of-means",
                 AUDIO_VAE_PREFIX + "per_channel_statistics.std-of-means"]
    table = probe_inverse(convert_ltx2_audio_vae_to_diffusers, fragments)
    return _checked(_by_prefix(vae.state_dict(), table), vae, audio_vae_state_dict, "audio VAE")


def vocoder_native(vocoder) -> dict[str, torch.Tensor]:
    """``LTX2Vocoder`` -> ``vocoder.*`` (ltx_core module names)."""
    sd = {VOCODER_PREFIX + k: v for k, v in rename_keys(vocoder.state_dict(), invert_renames(VOCODER_RENAMES)).items()}
    return _checked(sd, vocoder, vocoder_state_dict, "vocoder")


def connectors_native(connectors) -> dict[str, torch.Tensor]:
    """``LTX2TextConnectors`` (2.0) -> ``text_embedding_projection.*`` and the transformer's connector keys."""
    sd = rename_keys(connectors.state_dict(), invert_renames(CONNECTOR_RENAMES))
    return _checked(sd, connectors, connector_state_dict, "text connectors")


def transformer_native(transformer) -> dict[str, torch.Tensor]:
    sd = {diffusers_to_native_key(k): v for k, v in transformer.state_dict().items()}
    return _checked(sd, transformer, transformer_state_dict, "transformer")


def _stored(sd: Mapping[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {k: (v.detach().to(dtype) if v.is_floating_point() else v.detach()).contiguous().cpu() for k, v in sd.items()}


def save_ltx2_single_file(path: str | Path, *, transformer, native_config: Mapping[str, Any], connectors=None,
                          video_vae=None, audio_vae=None, vocoder=None, codec_config: Mapping[str, Any] | None = None,
                          dtype: torch.dtype = torch.float16) -> Path:
    """One LTX-2.0 single file: every given part under its native keys, ``config`` = ``{"transformer":
    native_config, **codec_config}`` (``audio_vae`` / ``vocoder`` sections in ltx_core's names)."""
    from safetensors.torch import save_file

    sd = transformer_native(transformer)
    for part, convert in ((connectors, connectors_native), (video_vae, video_vae_native),
                          (audio_vae, audio_vae_native), (vocoder, vocoder_native)):
        if part is not None:
            sd.update(convert(part))
    path = Path(path)
    config = {"transformer": dict(native_config), **dict(codec_config or {})}
    save_file(_stored(sd, dtype), str(path), metadata={"config": json.dumps(config)})
    return path


def gemma_native(model) -> dict[str, torch.Tensor]:
    """``Gemma3TextModel`` -> ComfyUI's ``model.*`` keys (the loader's TEXT_RENAMES turned around)."""
    sd = rename_keys(model.state_dict(), invert_renames(TEXT_RENAMES[-1:]))
    got, want = set(gemma_text_state_dict(sd)), set(model.state_dict())
    if got != want:
        raise CheckpointError(f"Gemma-3 writer: the loader would read {sorted(got ^ want)[:8]} differently")
    return sd


def save_gemma_single_file(path: str | Path, model, spiece_proto: bytes, *, dtype: torch.dtype = torch.float16) -> Path:
    """Gemma-3's text model in ComfyUI's single-file layout with the SentencePiece model in ``spiece_model``."""
    from safetensors.torch import save_file

    sd = _stored(gemma_native(model), dtype)
    sd[TOKENIZER_KEY] = torch.frombuffer(bytearray(spiece_proto), dtype=torch.uint8).clone()
    path = Path(path)
    save_file(sd, str(path))
    return path


__all__ = ["audio_vae_native", "connectors_native", "gemma_native", "invert_renames", "probe_inverse",
           "save_gemma_single_file", "save_ltx2_single_file", "transformer_native", "video_vae_native",
           "vocoder_native"]
