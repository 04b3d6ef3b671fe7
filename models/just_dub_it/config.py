"""LTX-2 transformer config: the native single-file ``config`` metadata -> diffusers kwargs.

The released checkpoint carries its own config (``{"transformer": {...}}`` in the safetensors
header); LTX-2.0 differs from the diffusers class defaults in RoPE layout, RoPE precision and the
audio<->video timestep multiplier, so the config must always come from the file.

LTX-2.0 (19B) and LTX-2.3 (22B) share one key layout apart from the 2.3 additions (gate logits on
every attention, 9-row AdaLN tables, prompt AdaLN, no caption projection); :func:`ltx_version`
tells them apart from the keys, so the user never names the version.
"""
from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

from ..common.checkpoint import CheckpointError

# LTX-2.0 19B values (ltx_core LTXModelConfigurator defaults + LTX-2.0 settings), for files without metadata.
LTX2_19B_NATIVE_CONFIG: dict[str, Any] = {
    "num_attention_heads": 32, "attention_head_dim": 128, "in_channels": 128, "out_channels": 128,
    "num_layers": 48, "cross_attention_dim": 4096, "caption_channels": 3840,
    "audio_num_attention_heads": 32, "audio_attention_head_dim": 64, "audio_in_channels": 128,
    "audio_out_channels": 128, "audio_cross_attention_dim": 2048, "norm_eps": 1e-6,
    "positional_embedding_theta": 10000.0, "positional_embedding_max_pos": [20, 2048, 2048],
    "audio_positional_embedding_max_pos": [20], "timestep_scale_multiplier": 1000,
    "av_ca_timestep_scale_multiplier": 1000, "rope_type": "split", "frequencies_precision": "float64",
    "activation_fn": "gelu-approximate", "attention_bias": True, "qk_norm": "rms_norm",
    "norm_elementwise_affine": False, "use_middle_indices_grid": True,
}

# LTX-2.3 22B: the 2.0 sizes with every 2.3 flag on (the released file's header config;
# golden/manifests/ltx23_22b_single_file.json), for files without metadata.
LTX23_22B_NATIVE_CONFIG: dict[str, Any] = {
    **LTX2_19B_NATIVE_CONFIG,
    "apply_gated_attention": True, "cross_attention_adaln": True, "caption_proj_before_connector": True,
    "connector_num_layers": 8, "connector_num_attention_heads": 32, "connector_attention_head_dim": 128,
    "audio_connector_num_attention_heads": 32, "audio_connector_attention_head_dim": 64,
    "connector_num_learnable_registers": 128, "connector_positional_embedding_max_pos": [4096],
    "connector_apply_gated_attention": True, "connector_norm_output": True,
    "text_encoder_norm_type": "per_token_rms",
}
# Keys (under ``model.diffusion_model.``) only an LTX-2.3 transformer has.
LTX23_MARKERS = ("prompt_adaln_single.linear.weight", ".to_gate_logits.weight", "prompt_scale_shift_table")
# Keys of LTX-2.5 (keyframe embedding), which this pack does not load yet.
LTX25_MARKERS = ("keyframes_abs_pos_embedding",)

# Settings of the native config that diffusers' class hard-wires; anything else cannot be honoured.
_FIXED = {
    "qk_norm": ("rms_norm",),
    "standardization_norm": ("rms_norm",),
    "positional_embedding_type": ("rope",),
    "use_middle_indices_grid": (True,),
    "use_audio_video_cross_attention": (True,),
    "share_ff": (False,),
    "ff_bias": (True,),  # False only in LTX-2.5
    "audio_ff_bias": (True,),
    "use_keyframes_abs_pos_embedding": (False,),
}


def ltx_version(keys: Iterable[str]) -> str:
    """``"2.0"`` or ``"2.3"`` from a checkpoint's transformer keys; LTX-2.5 is refused by name."""
    keys = list(keys)
    later = sorted(k for k in keys if any(m in k for m in LTX25_MARKERS))
    if later:
        raise CheckpointError(f"LTX-2 checkpoint: {later[0]} marks an LTX-2.5 file, which this pack does not load "
                              "(LTX-2.0 and LTX-2.3 are supported)")
    return "2.3" if any(m in k for k in keys for m in LTX23_MARKERS) else "2.0"


def _header_config(metadata: Mapping[str, str] | None) -> dict[str, Any] | None:
    raw = (metadata or {}).get("config")
    if raw is None:
        return None
    try:
        cfg = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"LTX-2 checkpoint: metadata 'config' is not JSON ({exc})") from exc
    return cfg.get("transformer", cfg)


def native_transformer_config(metadata: Mapping[str, str] | None, keys: Iterable[str] | None = None, *,
                              version: str | None = None) -> dict[str, Any]:
    """The ``transformer`` section of a single file's ``config`` metadata over the release defaults.

    ``keys`` (the file's tensor names) or ``version`` pick the version's defaults and must agree with
    the header's 2.3 flags; with neither the header alone decides (19B 2.0 defaults when it is absent).
    """
    cfg = _header_config(metadata)
    if keys is not None:
        version = ltx_version(keys)
    elif version is None:
        version = "2.3" if cfg and cfg.get("cross_attention_adaln") else "2.0"
    check = keys is not None or cfg is not None
    base = LTX23_22B_NATIVE_CONFIG if version == "2.3" else LTX2_19B_NATIVE_CONFIG
    native = {**base, **(cfg or {})}
    if check:
        flags = ("apply_gated_attention", "cross_attention_adaln", "caption_proj_before_connector")
        wrong = [f for f in flags if bool(native.get(f, False)) != (version == "2.3")]
        if wrong:
            raise CheckpointError(f"LTX-2 checkpoint: its tensors are an LTX-{version} model but the header config "
                                  f"says {', '.join(f'{f}={native.get(f)!r}' for f in wrong)}")
    return native


def is_ltx23(native: Mapping[str, Any]) -> bool:
    return bool(native.get("cross_attention_adaln"))


def diffusers_transformer_kwargs(native: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor kwargs of ``LTX2VideoTransformer3DModel`` equivalent to a native LTX-2 config."""
    for key, allowed in _FIXED.items():
        if key in native and native[key] not in allowed:
            raise CheckpointError(f"LTX-2 config: {key}={native[key]!r} is not supported (expected {allowed[0]!r})")
    max_pos = list(native["positional_embedding_max_pos"])
    audio_max_pos = list(native["audio_positional_embedding_max_pos"])
    return dict(
        in_channels=native["in_channels"],
        out_channels=native["out_channels"],
        num_attention_heads=native["num_attention_heads"],
        attention_head_dim=native["attention_head_dim"],
        cross_attention_dim=native["cross_attention_dim"],
        pos_embed_max_pos=max_pos[0],
        base_height=max_pos[1],
        base_width=max_pos[2],
        audio_in_channels=native["audio_in_channels"],
        audio_out_channels=native["audio_out_channels"],
        audio_num_attention_heads=native["audio_num_attention_heads"],
        audio_attention_head_dim=native["audio_attention_head_dim"],
        audio_cross_attention_dim=native["audio_cross_attention_dim"],
        audio_pos_embed_max_pos=audio_max_pos[0],
        num_layers=native["num_layers"],
        activation_fn=native["activation_fn"],
        norm_elementwise_affine=native["norm_elementwise_affine"],
        norm_eps=native["norm_eps"],
        caption_channels=native["caption_channels"],
        attention_bias=native["attention_bias"],
        rope_theta=float(native["positional_embedding_theta"]),
        # LTX-2.0 computes RoPE frequencies in float64 ("frequencies_precision").
        rope_double_precision=native.get("frequencies_precision") == "float64",
        rope_type=native["rope_type"],
        timestep_scale_multiplier=native["timestep_scale_multiplier"],
        cross_attn_timestep_scale_multiplier=native["av_ca_timestep_scale_multiplier"],
        # LTX-2.3 (ltx_core model_configurator: apply_gated_attention, cross_attention_adaln, ...).
        gated_attn=bool(native.get("apply_gated_attention", False)),
        audio_gated_attn=bool(native.get("apply_gated_attention", False)),
        cross_attn_mod=bool(native.get("cross_attention_adaln", False)),
        audio_cross_attn_mod=bool(native.get("cross_attention_adaln", False)),
        use_prompt_embeddings=not native.get("caption_proj_before_connector", False),
        use_prompt_adaln_single=bool(native.get("use_prompt_adaln_single", True)),
    )
