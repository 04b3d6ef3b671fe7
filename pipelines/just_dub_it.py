"""JUST-DUB-IT sampling: stage 1 generates the dubbed audio + video in the in-context layout;
the optional stage 2 refines the 2x-upsampled video with the audio frozen."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import torch

from ..models.just_dub_it.in_context import (
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
from ..models.just_dub_it.sampler import cfg_combine, euler_sample
from ..models.just_dub_it.schedule import DEFAULT_CFG, DEFAULT_STEPS, ltx2_sigmas, stage2_sigmas
from ..models.just_dub_it.transformer import InContextTransformer


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


# ---- the clip in, the dubbed latents out (what the nodes and a script call) ----------------------
MIN_SIDE, SIDE_MULTIPLE = 64, 32  # LTX-2 VAE 32x spatial compression


def clip_geometry(images: torch.Tensor, max_frames: int, width: int, height: int,
                  node: str = "Encode Dubbing Context") -> tuple[int, int, int]:
    """(frames, width, height) the clip is encoded at: 8k+1 frames, sides multiples of 32 (0 = the source's)."""
    from ..models.just_dub_it.schedule import valid_frame_count

    if images.shape[0] == 0:
        raise ValueError(f"{node}: input 'video': the VIDEO has no frames")
    count = images.shape[0] if max_frames <= 0 else min(images.shape[0], max_frames)
    frames = valid_frame_count(count)  # the causal VAE takes 8k+1 frames (paper 4 / ltx_core)
    h = height or images.shape[1] // SIDE_MULTIPLE * SIDE_MULTIPLE
    w = width or images.shape[2] // SIDE_MULTIPLE * SIDE_MULTIPLE
    if h < MIN_SIDE or w < MIN_SIDE or h % SIDE_MULTIPLE or w % SIDE_MULTIPLE:
        raise ValueError(f"{node}: inputs 'width'/'height': {w}x{h} must be multiples of 32, at least 64")
    return frames, w, h


def encode_clip_video(video_vae, images: torch.Tensor, ref, image_crf: int = 29):
    """Normalised latents of the prepared clip (``models.just_dub_it.preprocess.ReferenceClip``) and of its
    first frame alone, re-encoded as an H.264 still (JUST-DUB-IT's image conditioning):
    ([1, C, F, h, w], [1, C, 1, h, w]) on CPU."""
    from ..models.just_dub_it.av_codec import encode_video, fit_frames, h264_roundtrip

    height, width = ref.pixels.shape[-2:]
    video_latent = encode_video(video_vae, ref.pixels)
    first = encode_video(video_vae, fit_frames(h264_roundtrip(images[0].float().cpu(), image_crf)[None], height, width))
    return video_latent.cpu(), first.cpu()


def encode_clip_audio(audio_vae, ref) -> torch.Tensor:
    """The prepared clip's source speech (cut to its frames), as a normalised audio latent on CPU."""
    from ..models.just_dub_it.av_codec import encode_audio, waveform_to_mel

    return encode_audio(audio_vae, waveform_to_mel(ref.waveform, ref.sample_rate, audio_vae)).cpu()


def context_to(ctx: DubbingContext, device) -> DubbingContext:
    first = None if ctx.first_frame_latent is None else ctx.first_frame_latent.to(device)
    return DubbingContext(ctx.video_latent.to(device), ctx.audio_latent.to(device), ctx.fps, first)


def text_to(text: TextContext | None, device) -> TextContext | None:
    return None if text is None else TextContext(text.video.to(device), text.audio.to(device))


def dub(transformer: InContextTransformer, context: DubbingContext, positive: TextContext,
        negative: TextContext | None = None, *, steps: int = DEFAULT_STEPS, cfg: float = DEFAULT_CFG, seed: int = 0,
        callback: Callable | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Stage 1 on the transformer's device: (video latent, audio latent) float on CPU."""
    device = next(transformer.parameters()).device
    video, audio = dub_stage1(transformer, context_to(context, device), text_to(positive, device),
                              text_to(negative, device), steps=steps, cfg=cfg, seed=seed, callback=callback)
    return video.float().cpu(), audio.float().cpu()


def refine(transformer: InContextTransformer, context_2x: DubbingContext, upscaled_video: torch.Tensor,
           audio_latent: torch.Tensor, text: TextContext, *, seed: int = 0, callback: Callable | None = None):
    """Stage 2 on the transformer's device (2x context, 2x-upsampled stage-1 video, audio frozen): video on CPU."""
    device = next(transformer.parameters()).device
    refined = dub_stage2(transformer, context_to(context_2x, device), upscaled_video.to(device),
                         audio_latent.to(device), text_to(text, device), seed=seed, callback=callback)
    return refined.float().cpu()


# ---- clips longer than one window: speech segments -----------------------------------------------
@dataclass(frozen=True)
class DubSegment:
    """One dubbed piece of a long clip: frames [encode_start, +encode_frames) are encoded and dubbed
    (8k+1 of them, the VAE's rule); frames [keep_start, keep_end) of the whole clip are kept from it."""

    encode_start: int
    encode_frames: int
    keep_start: int
    keep_end: int


def frame_activity(waveform: torch.Tensor, sample_rate: int, fps, frames: int) -> torch.Tensor:
    """RMS of the source speech [C, N] under each video frame (exact frame borders at fractional rates)."""
    from ..models.common.frame_rate import exact_rate

    rate = exact_rate(fps)
    mono = waveform.float().reshape(-1, waveform.shape[-1]).mean(0)
    edges = [round(i * sample_rate / rate) for i in range(frames + 1)]
    out = torch.zeros(frames)
    for i in range(frames):
        seg = mono[edges[i]: edges[i + 1]]
        out[i] = seg.pow(2).mean().sqrt() if seg.numel() else 0.0
    return out


def speech_segments(frames: int, window: int, activity: torch.Tensor | None = None,
                    tolerance_fraction: float = 0.34) -> list[DubSegment]:
    """Pieces of at most ``window`` frames (rounded down to 8k+1) covering all ``frames``, cut at the
    quietest frame of the speech within the last third of each window (models/common/chunking.py), so
    no word is split. A piece that is not 8k+1 long is dubbed inside a longer 8k+1 span reaching past
    its end (or, at the clip's end, before its start) and cut back; a clip shorter than one 8k+1 span
    is dubbed as two overlapping spans."""
    from ..models.common.chunking import plan_windows
    from ..models.just_dub_it.schedule import valid_frame_count

    span = valid_frame_count(max(1, min(window, frames)))
    if frames <= span:
        pieces = [(0, frames)]
    else:
        tol = min(int(span * tolerance_fraction), span - 2)
        pieces = [(w.start, w.end) for w in plan_windows(frames, span, 0, activity=activity,
                                                        tolerance=tol if activity is not None else 0)]
    out = []
    for s, e in pieces:
        need = e - s
        enc = need if (need - 1) % 8 == 0 else ((need - 1) // 8 + 1) * 8 + 1
        if enc <= frames:
            out.append(DubSegment(min(s, frames - enc), enc, s, e))
        else:  # the whole clip is shorter than the 8k+1 span this piece needs: two spans that fit
            enc = valid_frame_count(need)
            out += [DubSegment(s, enc, s, s + enc), DubSegment(e - enc, enc, s + enc, e)]
    return out
