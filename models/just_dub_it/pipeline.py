"""JUST-DUB-IT sampling: stage 1 generates the dubbed audio + video in the in-context layout;
the optional stage 2 refines the 2x-upsampled video with the audio frozen."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import torch

from .in_context import (
    TokenState,
    add_noise,
    audio_positions,
    audio_state,
    isolation_masks,
    patchify_audio,
    patchify_video,
    unpatchify_audio,
    unpatchify_video,
    video_state,
)
from .sampler import cfg_combine, euler_sample
from .schedule import DEFAULT_CFG, DEFAULT_STEPS, ltx2_sigmas, stage2_sigmas
from .transformer import InContextTransformer


@dataclass
class DubbingContext:
    """The encoded source clip: normalised VAE latents (what the transformer sees)."""

    video_latent: torch.Tensor  # [1, C, F, H, W]
    audio_latent: torch.Tensor  # [1, C, T, M]
    fps: float
    first_frame_latent: torch.Tensor | None = None  # [1, C, 1, H, W], the clean first frame (paper 3.3)


@dataclass
class TextContext:
    """Per-stream text features after the Gemma connectors: [B, L, caption_channels]."""

    video: torch.Tensor
    audio: torch.Tensor


def initial_states(ctx: DubbingContext, generator: torch.Generator) -> tuple[TokenState, TokenState]:
    v = video_state(ctx.video_latent, ctx.fps, first_frame=ctx.first_frame_latent)
    a = audio_state(ctx.audio_latent)
    # ltx_core's noiser draws over the whole sequence, video first, then audio.
    v_noise = torch.randn(v.latent.shape, generator=generator, device=generator.device, dtype=v.latent.dtype)
    a_noise = torch.randn(a.latent.shape, generator=generator, device=generator.device, dtype=a.latent.dtype)
    return add_noise(v, v_noise.to(v.latent.device)), add_noise(a, a_noise.to(a.latent.device))


def guided_denoiser(
    model: InContextTransformer,
    video: TokenState,
    audio: TokenState,
    positive: TextContext,
    negative: TextContext | None,
    cfg: float,
    *,
    batch_cfg: bool = True,
):
    """``denoise_fn`` for :func:`euler_sample`: x0 predictions with CFG and isolation masks.

    With ``batch_cfg`` the conditional and unconditional passes share one forward (batch 2)
    when their text lengths match, which is what the GPU anchor timing counts as one step.
    """
    a2v, v2a = isolation_masks(video, audio)
    guided = negative is not None and cfg != 1.0
    same_len = guided and positive.video.shape == negative.video.shape and positive.audio.shape == negative.audio.shape

    def run(vl, al, sigma, text: TextContext):
        b = vl.shape[0]
        return model.denoise(
            vl, al,
            video.timesteps(sigma).expand(b, -1, -1), audio.timesteps(sigma).expand(b, -1, -1),
            video.positions.expand(b, -1, -1, -1), audio.positions.expand(b, -1, -1, -1),
            text.video, text.audio, a2v, v2a,
        )

    def denoise(latents, sigma):
        vl, al = latents
        if not guided:
            return run(vl, al, sigma, positive)
        if batch_cfg and same_len:
            both = TextContext(torch.cat([positive.video, negative.video]), torch.cat([positive.audio, negative.audio]))
            v_den, a_den = run(vl.repeat(2, 1, 1), al.repeat(2, 1, 1), sigma, both)
            (v_c, v_u), (a_c, a_u) = v_den.chunk(2), a_den.chunk(2)
        else:
            v_c, a_c = run(vl, al, sigma, positive)
            v_u, a_u = run(vl, al, sigma, negative)
        return cfg_combine(v_c, v_u, cfg), cfg_combine(a_c, a_u, cfg)

    return denoise


@torch.no_grad()
def dub_stage1(
    model: InContextTransformer,
    ctx: DubbingContext,
    positive: TextContext,
    negative: TextContext | None = None,
    *,
    steps: int = DEFAULT_STEPS,
    cfg: float = DEFAULT_CFG,
    seed: int = 0,
    sigmas: torch.Tensor | None = None,
    batch_cfg: bool = True,
    callback: Callable[[int, int], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generated (video [1, C, F, H, W], audio [1, C, T, M]) latents for the target tokens."""
    device = ctx.video_latent.device
    generator = torch.Generator(device=device).manual_seed(seed)
    video, audio = initial_states(ctx, generator)
    sigmas = (ltx2_sigmas(steps) if sigmas is None else sigmas).to(device)
    denoise = guided_denoiser(model, video, audio, positive, negative, cfg, batch_cfg=batch_cfg)
    video, audio = euler_sample([video, audio], sigmas, denoise, callback)
    _, c, f, h, w = ctx.video_latent.shape
    return (
        unpatchify_video(video.target(), f, h, w),
        unpatchify_audio(audio.target(), ctx.audio_latent.shape[1]),
    )


@torch.no_grad()
def dub_stage2(
    model: InContextTransformer,
    ctx: DubbingContext,
    upscaled_video: torch.Tensor,
    audio_latent: torch.Tensor,
    positive: TextContext,
    *,
    seed: int = 0,
    sigmas: torch.Tensor | None = None,
    callback: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """JUST-DUB-IT stage 2: refine the 2x-upsampled video with the distilled LoRA (on ``model``).

    ``ctx`` holds the source clip encoded at the 2x size. As in pipeline_justdubit: the schedule is
    the distilled [0.909375, 0.725, 0.421875, 0] without its first value, the upsampled latent is
    re-noised to the first remaining sigma, no CFG, and the stage-1 audio is frozen (timestep 0,
    no reference audio appended) while still attending to the video's target tokens.
    """
    device = ctx.video_latent.device
    generator = torch.Generator(device=device).manual_seed(seed)
    sigmas = (stage2_sigmas()[1:] if sigmas is None else sigmas).to(device)
    video = video_state(ctx.video_latent, ctx.fps, first_frame=ctx.first_frame_latent)
    n = video.num_target
    start = patchify_video(upscaled_video.to(video.latent))
    first = video.denoise_mask[:, :n] == 0  # the clean first frame keeps its encoded tokens
    target = torch.where(first, video.clean[:, :n], start)
    video = replace(video, latent=torch.cat([target, video.latent[:, n:]], 1),
                    clean=torch.cat([target, video.clean[:, n:]], 1))
    noise = torch.randn(video.latent.shape, generator=generator, device=device, dtype=video.latent.dtype)
    video = add_noise(video, noise, float(sigmas[0]))
    tokens = patchify_audio(audio_latent.to(device))
    audio = TokenState(tokens, tokens, torch.ones_like(tokens[..., :1]), audio_positions(tokens.shape[1], device=device),
                       tokens.shape[1])
    a2v, v2a = isolation_masks(video, audio)  # built while the audio still counts as target
    audio = replace(audio, denoise_mask=torch.zeros_like(audio.denoise_mask))

    def denoise(latents, sigma):
        vl, al = latents
        return model.denoise(vl, al, video.timesteps(sigma), audio.timesteps(sigma), video.positions, audio.positions,
                             positive.video, positive.audio, a2v, v2a)

    video, _ = euler_sample([video, audio], sigmas, denoise, callback)
    _, c, f, h, w = ctx.video_latent.shape
    return unpatchify_video(video.target(), f, h, w)
