"""Released MMAudio sizes, the AudioGen-Omni paper size, and config detection from checkpoint shapes."""
from __future__ import annotations

import re
from typing import Mapping

import torch

from ..common.checkpoint import CheckpointError
from .mmdit import MMDiTConfig

# mmaudio/model/networks.py + sequence_config.py: 8 s; 16k = 31.25 latents/s, 44.1k = 43.07 latents/s.
_16K = dict(latent_dim=20, sample_rate=16000, samples_per_latent=512, latent_seq_len=250)
_44K = dict(latent_dim=40, sample_rate=44100, samples_per_latent=1024, latent_seq_len=345)
_VIS = dict(clip_dim=1024, sync_dim=768, text_dim=1024, clip_seq_len=64, sync_seq_len=192, text_seq_len=77)

PRESETS: dict[str, MMDiTConfig] = {
    "small_16k": MMDiTConfig(**_16K, **_VIS, hidden_dim=448, depth=12, fused_depth=8, num_heads=7),
    "small_44k": MMDiTConfig(**_44K, **_VIS, hidden_dim=448, depth=12, fused_depth=8, num_heads=7),
    "medium_44k": MMDiTConfig(**_44K, **_VIS, hidden_dim=896, depth=12, fused_depth=8, num_heads=14),
    "large_44k": MMDiTConfig(**_44K, **_VIS, hidden_dim=896, depth=21, fused_depth=14, num_heads=14),
    "large_44k_v2": MMDiTConfig(**_44K, **_VIS, hidden_dim=896, depth=21, fused_depth=14, num_heads=14, v2=True),
    # AudioGen-Omni (paper 4: 1.55B, 24 layers; T5-Base 768-d text, 768-d lyrics, MetaCLIP bigG 1280-d
    # frames at 8 fps, 10 s max). Width/split are ours (the paper does not state them):
    # 1024 = 16 heads x 64, 9 joint + 15 fused blocks gives 1.56B with the 44.1k latent.
    "audiogen_omni": MMDiTConfig(
        **_44K, clip_dim=1280, sync_dim=768, text_dim=768, clip_seq_len=64, sync_seq_len=192, text_seq_len=77,
        hidden_dim=1024, depth=24, fused_depth=15, num_heads=16, v2=True, lyrics_dim=768, lyrics_vocab=257,
        timing_seconds=30,
    ),
}

DROP_ON_LOAD = ("t_embed.freqs", "latent_rot", "clip_rot")  # recomputed; present in some released .pth


def _count(sd: Mapping[str, torch.Tensor], pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in sd if (m := rx.match(k))})


def detect_config(sd: Mapping[str, torch.Tensor]) -> tuple[str, MMDiTConfig]:
    """Name and config of an MMDiT state dict, read from its key set and tensor shapes.

    The name is a preset name when the shapes match one, else "custom".
    """
    need = ("audio_input_proj.0.weight", "clip_input_proj.0.weight", "sync_input_proj.0.weight",
            "text_input_proj.0.weight", "joint_blocks.0.latent_block.attn.q_norm.weight", "empty_string_feat")
    missing = [k for k in need if k not in sd]
    if missing:
        raise CheckpointError(f"not an MMAudio/AudioGen-Omni MMDiT checkpoint: missing {', '.join(missing)}")
    hidden, latent_dim, _ = sd["audio_input_proj.0.weight"].shape
    head_dim = sd["joint_blocks.0.latent_block.attn.q_norm.weight"].shape[0]
    n_joint = _count(sd, r"joint_blocks\.(\d+)\.")
    n_fused = _count(sd, r"fused_blocks\.(\d+)\.")
    # v2 inserts a SiLU after the clip linear, so its SwiGLU sits at index 2 instead of 1.
    v2 = "clip_input_proj.2.w1.weight" in sd
    ffn = sd["joint_blocks.0.latent_block.ffn.w1.weight"].shape[0] if n_joint > 1 else None
    base = PRESETS["small_16k"] if latent_dim == 20 else PRESETS["large_44k"]
    cfg = base.replace(
        latent_dim=int(latent_dim),
        clip_dim=int(sd["clip_input_proj.0.weight"].shape[1]),
        sync_dim=int(sd["sync_input_proj.0.weight"].shape[1]),
        text_dim=int(sd["text_input_proj.0.weight"].shape[1]),
        text_seq_len=int(sd["empty_string_feat"].shape[0]),
        hidden_dim=int(hidden),
        num_heads=int(hidden // head_dim),
        depth=n_joint + n_fused,
        fused_depth=n_fused,
        v2=v2,
        lyrics_dim=int(sd["lyrics_input_proj.0.weight"].shape[1]) if "lyrics_input_proj.0.weight" in sd else 0,
        timing_seconds=int(sd["start_embed.weight"].shape[0] - 1) if "start_embed.weight" in sd else 0,
        lyrics_vocab=int(sd["lyrics_encoder.embed.weight"].shape[0]) if "lyrics_encoder.embed.weight" in sd else 0,
        lyrics_blocks=_count(sd, r"lyrics_encoder\.blocks\.(\d+)\.") if "lyrics_encoder.embed.weight" in sd else 4,
    )
    if ffn is not None:
        from .layers import swiglu_width

        if swiglu_width(int(hidden * cfg.mlp_ratio)) != ffn:
            raise CheckpointError(f"MMDiT FFN width {ffn} does not match mlp_ratio {cfg.mlp_ratio} at hidden {hidden}")
    for name, preset in PRESETS.items():
        if preset == cfg:
            return name, cfg
    return "custom", cfg


def clean_state_dict(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Released-file extras removed; a ``state_dict.``/``module.``/``net.`` wrapper prefix stripped."""
    out = {k: v for k, v in sd.items() if k not in DROP_ON_LOAD}
    for prefix in ("module.", "state_dict.", "net.", "model."):
        if out and all(k.startswith(prefix) for k in out):
            out = {k[len(prefix):]: v for k, v in out.items()}
    return out
