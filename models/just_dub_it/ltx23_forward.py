"""The LTX-2.3 top-level forward in the ltx-core 1.2.0 timestep convention, over diffusers' modules.

diffusers' ``LTX2VideoTransformer3DModel`` builds every 2.3 module (gate logits, 9-row AdaLN tables,
prompt AdaLN) and its blocks compute the 2.3 block exactly, but its forward takes the audio<->video
cross-attention scale/shift and gate from the same timestep (both the stream's own per-token
timesteps, or with ``use_cross_timestep`` both the other stream's sigma). ltx-core 1.2.0 — the code
DubIt ships with — splits them: scale/shift from the stream's own per-token timesteps, gate from
the other stream's scalar sigma (transformer_args.py L388-411, commit 203d484). This module
prepares the block inputs that way and runs diffusers' blocks and output layers unchanged.
"""
from __future__ import annotations

import torch
from torch import nn


def _embed(adaln: nn.Module, timesteps: torch.Tensor, batch: int, dtype: torch.dtype):
    """AdaLN-single on scaled timesteps; [B, 1 or N, k*D] modulation and [B, 1 or N, D] embedding."""
    mod, emb = adaln(timesteps.flatten(), batch_size=batch, hidden_dtype=dtype)
    return mod.view(batch, -1, mod.shape[-1]), emb.view(batch, -1, emb.shape[-1])


def _output(norm: nn.Module, proj: nn.Module, table: torch.Tensor, x: torch.Tensor, emb: torch.Tensor):
    shift, scale = (table[None, None] + emb[:, :, None]).unbind(dim=2)
    return proj(norm(x) * (1 + scale) + shift)


def ltx23_forward(
    model: nn.Module,
    video_latent: torch.Tensor,
    audio_latent: torch.Tensor,
    video_timesteps: torch.Tensor,
    audio_timesteps: torch.Tensor,
    video_sigma: torch.Tensor,
    audio_sigma: torch.Tensor,
    video_positions: torch.Tensor,
    audio_positions: torch.Tensor,
    video_context: torch.Tensor,
    audio_context: torch.Tensor,
    video_context_mask: torch.Tensor | None = None,
    audio_context_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Velocities of a diffusers LTX-2.3 transformer (``cross_attn_mod``, no caption projection).

    Timesteps are sigmas per token [B, N, 1]; ``*_sigma`` [B] is the stream's scalar sigma
    (ltx_core ``Modality.sigma``: the step sigma, 0 for a frozen stream); contexts arrive at the
    stream width (the 2.3 connectors' outputs). Context masks are additive biases [B, 1, L] or None.
    """
    cfg = model.config
    b = video_latent.shape[0]
    dtype = video_latent.dtype
    mult = cfg.timestep_scale_multiplier  # ltx_core embeds sigma * 1000
    av_factor = cfg.cross_attn_timestep_scale_multiplier / mult
    video_sigma = video_sigma.reshape(b).to(torch.float32)
    audio_sigma = audio_sigma.reshape(b).to(torch.float32)

    video_rope = model.rope(video_positions, device=video_latent.device)
    audio_rope = model.audio_rope(audio_positions, device=audio_latent.device)
    video_ca_rope = model.cross_attn_rope(video_positions[:, 0:1], device=video_latent.device)
    audio_ca_rope = model.cross_attn_audio_rope(audio_positions[:, 0:1], device=audio_latent.device)

    x = model.proj_in(video_latent)
    ax = model.audio_proj_in(audio_latent)

    temb, video_emb = _embed(model.time_embed, video_timesteps * mult, b, dtype)
    temb_audio, audio_emb = _embed(model.audio_time_embed, audio_timesteps * mult, b, dtype)
    prompt_video = prompt_audio = None
    if hasattr(model, "prompt_adaln"):  # text K/V modulation from the scalar sigma (model.py L221-227)
        prompt_video = _embed(model.prompt_adaln, video_sigma * mult, b, dtype)[0]
        prompt_audio = _embed(model.audio_prompt_adaln, audio_sigma * mult, b, dtype)[0]
    # 1.2.0: scale/shift from the stream's own per-token timesteps; gate from the other stream's sigma.
    video_ca_ss = _embed(model.av_cross_attn_video_scale_shift, video_timesteps * mult, b, dtype)[0]
    audio_ca_ss = _embed(model.av_cross_attn_audio_scale_shift, audio_timesteps * mult, b, dtype)[0]
    video_ca_gate = _embed(model.av_cross_attn_video_a2v_gate, audio_sigma * mult * av_factor, b, dtype)[0]
    audio_ca_gate = _embed(model.av_cross_attn_audio_v2a_gate, video_sigma * mult * av_factor, b, dtype)[0]

    args = (video_context.to(dtype), audio_context.to(dtype), temb, temb_audio, video_ca_ss, audio_ca_ss,
            video_ca_gate, audio_ca_gate, prompt_video, prompt_audio, video_rope, audio_rope,
            video_ca_rope, audio_ca_rope, video_context_mask, audio_context_mask)
    checkpointing = torch.is_grad_enabled() and getattr(model, "gradient_checkpointing", False)
    for block in model.transformer_blocks:
        if checkpointing:
            x, ax = model._gradient_checkpointing_func(block, x, ax, *args)
        else:
            x, ax = block(x, ax, *args)

    video = _output(model.norm_out, model.proj_out, model.scale_shift_table, x, video_emb)
    audio = _output(model.audio_norm_out, model.audio_proj_out, model.audio_scale_shift_table, ax, audio_emb)
    return video, audio
