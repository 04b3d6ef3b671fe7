"""MTV denoiser: the diffusers CogVideoX backbone with the MST-ControlNet audio step in every layer.

The layer forward is ours (the audio step sits between self-attention and the feed-forward,
mtv/dit_video_concat.py ``AdaLNMixin.layer_forward``); it reuses the diffusers submodules, so
attention processors, offload hooks and dtype handling are diffusers'.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping

import torch
import torch.nn.functional as F
from diffusers import CogVideoXTransformer3DModel
from torch import nn

from ..common.checkpoint import load_strict, meta_device
from .audio_modules import MSTConfig, MSTControlNet
from .convert import convert_sat_to_ours, require
from .rope import rope_3d

FINAL_NORM_EPS = 1e-6  # official FinalLayerMixin.norm_final (diffusers' norm_out uses norm_eps)


@dataclass(frozen=True)
class BackboneConfig:
    """CogVideoX-5B-I2V sizes by default (cogvideox_5b.yaml)."""

    num_layers: int = 42
    num_heads: int = 48
    head_dim: int = 64
    in_channels: int = 32
    out_channels: int = 16
    patch_size: int = 2
    time_embed_dim: int = 512
    text_embed_dim: int = 4096
    text_length: int = 226
    latent_frames: int = 13
    latent_height: int = 60
    latent_width: int = 90
    temporal_compression: int = 4

    @classmethod
    def from_state_dict(
        cls, sd: Mapping[str, torch.Tensor], *, latent_height: int | None = None, latent_width: int | None = None,
        latent_frames: int = 13,
    ) -> "BackboneConfig":
        """Sizes from our (converted) keys. The learned positions fix the text length and the patch grid;
        the grid's height/width split cannot be read, so it defaults to 480x720 (60x90 latents)."""
        ctx = "MTV backbone config"
        proj = require(sd, "backbone.patch_embed.proj.weight", ctx)
        hidden, in_ch, p = proj.shape[0], proj.shape[1], proj.shape[-1]
        head_dim = require(sd, "backbone.transformer_blocks.0.attn1.norm_q.weight", ctx).shape[0]
        n_layers = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("backbone.transformer_blocks."))
        total = require(sd, "backbone.patch_embed.pos_embedding", ctx).shape[1]
        if latent_height is None or latent_width is None:
            latent_height, latent_width = cls.latent_height, cls.latent_width
        patches = latent_frames * (latent_height // p) * (latent_width // p)
        if patches >= total:
            raise ValueError(
                f"{ctx}: learned positions hold {total} tokens, fewer than the {patches} of a "
                f"{latent_frames}x{latent_height}x{latent_width} latent; give the checkpoint's latent size"
            )
        return cls(
            num_layers=n_layers,
            num_heads=hidden // head_dim,
            head_dim=head_dim,
            in_channels=in_ch,
            out_channels=sd["backbone.proj_out.weight"].shape[0] // (p * p),
            patch_size=p,
            time_embed_dim=sd["backbone.time_embedding.linear_1.weight"].shape[0],
            text_embed_dim=sd["backbone.patch_embed.text_proj.weight"].shape[1],
            text_length=total - patches,
            latent_frames=latent_frames,
            latent_height=latent_height,
            latent_width=latent_width,
        )

    def diffusers_kwargs(self) -> dict:
        return dict(
            num_attention_heads=self.num_heads,
            attention_head_dim=self.head_dim,
            in_channels=self.in_channels,
            out_channels=self.out_channels,
            time_embed_dim=self.time_embed_dim,
            text_embed_dim=self.text_embed_dim,
            num_layers=self.num_layers,
            sample_width=self.latent_width,
            sample_height=self.latent_height,
            sample_frames=(self.latent_frames - 1) * self.temporal_compression + 1,
            patch_size=self.patch_size,
            temporal_compression_ratio=self.temporal_compression,
            max_text_seq_length=self.text_length,
            use_rotary_positional_embeddings=True,
            use_learned_positional_embeddings=True,
        )


class MTVTransformer(nn.Module):
    def __init__(self, backbone: BackboneConfig, audio: MSTConfig):
        super().__init__()
        self.config = backbone
        self.backbone = CogVideoXTransformer3DModel(**backbone.diffusers_kwargs())
        self.audio = MSTControlNet(audio)

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def from_official_state_dict(
        cls, sd: Mapping[str, torch.Tensor], *, latent_height=None, latent_width=None, dtype=None, context="MTV"
    ) -> "MTVTransformer":
        ours = convert_sat_to_ours(sd)
        bb = BackboneConfig.from_state_dict(ours, latent_height=latent_height, latent_width=latent_width)
        audio_sd = {k[len("audio."):]: v for k, v in ours.items() if k.startswith("audio.")}
        if not audio_sd:
            raise ValueError(f"{context}: the checkpoint has no audio modules (plain CogVideoX, not MTV)")
        au = MSTConfig.from_state_dict(audio_sd, num_heads=bb.num_heads)
        with meta_device():
            model = cls(bb, au)
        load_strict(model, ours, context=context, dtype=dtype, assign=True)
        return model.eval()

    def place(self, device, projector_device=None) -> "MTVTransformer":
        """Everything on ``device`` except the three audio projectors (3 x 1.2B-parameter temporal
        convs at full size, run once per chunk): those stay on ``projector_device`` and are
        streamed in by ``project_audio``. Keeps the resident bf16 model near 18 GB instead of 25 GB."""
        projector_device = projector_device or device
        for name, child in self.named_children():
            if name != "audio":
                child.to(device)
        for name, child in self.audio.named_children():
            child.to(projector_device if name.startswith("audio_proj") else device)
        for name, param in self.audio.named_parameters(recurse=False):
            param.data = param.data.to(device)
        return self

    @torch.no_grad()
    def project_audio(self, feats: dict[str, torch.Tensor], device) -> dict[str, torch.Tensor]:
        """``audio.project`` with each projector brought to ``device`` for its pass and sent back."""
        names = {"vocal": "audio_proj", "vocal_1": "audio_proj", "effect": "audio_proj_effect",
                 "music": "audio_proj_music"}
        tokens = {}
        for stream, feat in feats.items():
            proj = getattr(self.audio, names[stream])
            home = next(proj.parameters()).device
            proj.to(device)
            tokens[stream] = proj(feat.to(device, next(proj.parameters()).dtype))
            proj.to(home)
        if self.audio.config.multi_person and "vocal_1" not in tokens:
            raise ValueError("the multi-person MTV model needs a second speech stream (vocal_1)")
        return tokens

    def describe(self) -> dict:
        return {"backbone": asdict(self.config), "audio": asdict(self.audio.config)}

    # ---- forward ------------------------------------------------------------------------------
    def time_embedding(self, timestep: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        t_emb = self.backbone.time_proj(timestep).to(dtype)
        return self.backbone.time_embedding(t_emb)

    def rope(self, frames: int, height: int, width: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.config.patch_size
        return rope_3d(frames, height // p, width // p, self.config.head_dim, device=device)

    def forward(
        self,
        latents: torch.Tensor,
        context: torch.Tensor,
        timestep: torch.Tensor,
        audio_tokens: dict[str, torch.Tensor] | None,
        *,
        image_latents: torch.Tensor | None = None,
        clean_frames: int = 0,
        trace: dict | None = None,
    ) -> torch.Tensor:
        """Model output (v-prediction) for ``latents`` [B, T, C, H, W].

        ``audio_tokens``: ``self.audio.project(...)`` of the wav2vec windows (computed once per clip);
        None skips the audio step. ``image_latents`` are concatenated on channels (I2V; zeros when
        None, as the official sampler does). The first ``clean_frames`` latent frames are clean
        conditioning: their video tokens are modulated with the timestep-0 embedding.
        """
        b, t, _, h, w = latents.shape
        if image_latents is None:
            image_latents = torch.zeros_like(latents)
        x = torch.cat([latents, image_latents.to(latents.dtype)], dim=2)
        dtype = next(self.backbone.parameters()).dtype
        x, context = x.to(dtype), context.to(dtype)
        timestep = timestep.reshape(-1).expand(b) if timestep.numel() in (1, b) else timestep
        emb = self.time_embedding(timestep, dtype)
        emb0 = self.time_embedding(torch.zeros_like(timestep), dtype) if clean_frames > 0 else None
        if trace is not None:
            trace["time_emb"] = emb
        hidden = self.backbone.patch_embed(context, x)
        text_len = context.shape[1]
        text, img = hidden[:, :text_len], hidden[:, text_len:]
        cos, sin = self.rope(t, h, w, x.device)
        per_frame = img.shape[1] // t
        rope_first = (cos[:per_frame], sin[:per_frame])
        audio = None
        if audio_tokens is not None:
            audio = self.audio.combine({k: v.to(dtype) for k, v in audio_tokens.items()}, emb, trace)
            if trace is not None:
                trace["audio_emb"] = audio
        for i, block in enumerate(self.backbone.transformer_blocks):
            img, text = self.layer_forward(
                i, block, img, text, emb, emb0, clean_frames, t, (cos, sin), rope_first, audio, trace
            )
        img = self.backbone.norm_final(img)
        shift, scale = self.backbone.norm_out.linear(F.silu(emb)).chunk(2, dim=1)
        norm = self.backbone.norm_out.norm
        img = F.layer_norm(img, norm.normalized_shape, norm.weight, norm.bias, FINAL_NORM_EPS)
        img = self.backbone.proj_out(img * (1 + scale[:, None]) + shift[:, None])
        p = self.config.patch_size
        out = img.reshape(b, t, h // p, w // p, -1, p, p).permute(0, 1, 4, 2, 5, 3, 6)
        return out.flatten(5, 6).flatten(3, 4)

    def layer_forward(self, i, block, img, text, emb, emb0, clean_frames, frames, rope, rope_first, audio, trace):
        norm_img, norm_text, gate, text_gate = self._modulated(block.norm1, img, text, emb, emb0, clean_frames, frames)
        attn_img, attn_text = block.attn1(
            hidden_states=norm_img, encoder_hidden_states=norm_text, image_rotary_emb=rope
        )
        img = img + gate * attn_img
        text = text + text_gate * attn_text
        if audio is not None:
            if trace is not None:
                trace[f"L{i}.img_hidden_before_audio"] = img
            step_trace = {} if trace is not None else None
            img = self.audio.layers[i](img, audio, frames, block.attn1.norm_q, block.attn1.norm_k, rope_first, step_trace)
            if trace is not None:
                trace.update({f"L{i}.{k}": v for k, v in step_trace.items()})
                trace[f"L{i}.img_hidden_after_audio"] = img
        norm_img, norm_text, gate, text_gate = self._modulated(block.norm2, img, text, emb, emb0, clean_frames, frames)
        ff = block.ff(torch.cat([norm_text, norm_img], dim=1))
        text_len = text.shape[1]
        return img + gate * ff[:, text_len:], text + text_gate * ff[:, :text_len]

    @staticmethod
    def _modulated(norm: nn.Module, img, text, emb, emb0, clean_frames: int, frames: int):
        """diffusers ``CogVideoXLayerNormZero``, plus the official per-frame t0 modulation of clean frames."""
        if emb0 is None or clean_frames <= 0:
            return norm(img, text, emb)
        shift, scale, gate, t_shift, t_scale, t_gate = norm.linear(norm.silu(emb)).chunk(6, dim=1)
        shift0, scale0, gate0 = norm.linear(norm.silu(emb0)).chunk(6, dim=1)[:3]
        b, tn, d = img.shape
        clean = (torch.arange(frames, device=img.device) < clean_frames).repeat_interleave(tn // frames)[None, :, None]
        pick = lambda a, a0: torch.where(clean, a0[:, None], a[:, None])  # noqa: E731
        normed = norm.norm(img)
        img_out = normed * (1 + pick(scale, scale0)) + pick(shift, shift0)
        text_out = norm.norm(text) * (1 + t_scale[:, None]) + t_shift[:, None]
        return img_out, text_out, pick(gate, gate0), t_gate[:, None]


def num_latent_frames(num_frames: int, temporal_compression: int = 4) -> int:
    return (num_frames - 1) // temporal_compression + 1


def latent_frames_to_video(latent_frames: int, temporal_compression: int = 4) -> int:
    return (latent_frames - 1) * temporal_compression + 1


__all__ = ["BackboneConfig", "MTVTransformer", "num_latent_frames", "latent_frames_to_video"]
