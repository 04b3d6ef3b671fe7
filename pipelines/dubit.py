"""Lightricks' DubIt on LTX-2.3 (``ltx_pipelines/dubit.py``, LTX-2 1.2.0), and the pack's own-voice mode.

DubIt, as the reference runs it:
1. stage 1 at half the final size: the 8 distilled sigmas, the source clip's video as clean reference
   tokens at the target's own positions (denoise mask ``1 - reference_strength``), the full source audio
   as clean reference tokens at negative time, no attention masks, per-token timesteps ``mask * sigma``,
   one conditional pass (no CFG, no STG);
2. the x2 spatial latent upsampler;
3. stage 2 at the final size over sigmas [0.909375, 0.725, 0.421875, 0]: the upscaled latent re-noised
   to 0.909375, the audio frozen (mask 0, stream sigma 0) with the stage-1 audio as its reference;
4. the final audio is the stage-1 audio.

Own voice (asked for in JUST-DUB-IT's and LTX-2's trackers): the target speech is given. Its latent is
frozen in both stages exactly as DubIt freezes stage 2's audio (target = the given speech, reference =
the same latent at negative time, stream sigma 0), so only the picture (lips, face) is generated.

Unlike the reference, which writes its container at ``int(fps)``, the frame rate stays the source's exact
rational (29.97 fps stays 30000/1001): positions are in seconds at that rate and the audio target is
``round(frames / fps * 25)`` latents of the same clip.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

import torch

from ..models.common.frame_rate import exact_rate
from ..models.just_dub_it.dubit_layout import audio_target_frames, dubit_audio_state, dubit_video_state
from ..models.just_dub_it.in_context import TokenState, add_noise, unpatchify_audio, unpatchify_video
from ..models.just_dub_it.sampler import euler_sample
from ..models.just_dub_it.schedule import STAGE2_DISTILLED_SIGMAS, valid_frame_count

# The distilled model's 8 stage-1 sigmas (LTX-2 1.2.0 ltx_pipelines, as dubit.py's stage 1 runs them).
DISTILLED_SIGMAS = (1.0, 0.99375, 0.9875, 0.98125, 0.975, 0.909375, 0.725, 0.421875, 0.0)
# Stage 2 starts from the upscaled latent re-noised to the first of these (dubit.py, noise_scale).
STAGE2_SIGMAS = STAGE2_DISTILLED_SIGMAS
# The final size halves for stage 1, whose latents are 32x smaller than the pixels: multiples of 64.
SIZE_MULTIPLE = 64
MIN_SIDE = 128


@dataclass
class TextContext:
    """Per-stream text features after the connectors: [1, L, D_video] and [1, L, D_audio]."""

    video: torch.Tensor
    audio: torch.Tensor


@dataclass
class DubItSource:
    """The source clip, encoded: normalised latents as the transformer sees them."""

    video_half: torch.Tensor  # [1, C, F, H/64, W/64] reference video for stage 1 (half size)
    video_full: torch.Tensor  # [1, C, F, H/32, W/32] reference video for stage 2 (final size)
    audio: torch.Tensor  # [1, C, T_src, M] the full source audio (stage-1 reference)
    frames: int  # pixel frames (8k + 1)
    fps: Fraction
    voice: torch.Tensor | None = None  # [1, C, T, M] own voice: the given target speech, frozen

    @property
    def audio_frames(self) -> int:
        return audio_target_frames(self.frames, float(self.fps))


# ---- geometry -----------------------------------------------------------------------------------

def dubit_geometry(images: torch.Tensor, fps, max_frames: int, width: int, height: int,
                   node: str = "DubIt Sampler") -> tuple[int, Fraction, int, int]:
    """(frames, exact fps, final width, final height): 8k + 1 frames; sides multiples of 64 (0 = the source's)."""
    if images.shape[0] == 0:
        raise ValueError(f"{node}: input 'video': the VIDEO has no frames")
    try:
        rate = exact_rate(fps)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{node}: input 'video': {exc}") from exc
    count = images.shape[0] if max_frames <= 0 else min(images.shape[0], max_frames)
    frames = valid_frame_count(count)  # the causal VAE takes 8k + 1 frames (dubit.py snaps down)
    h = height or images.shape[1] // SIZE_MULTIPLE * SIZE_MULTIPLE
    w = width or images.shape[2] // SIZE_MULTIPLE * SIZE_MULTIPLE
    if h < MIN_SIDE or w < MIN_SIDE or h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
        raise ValueError(f"{node}: inputs 'width'/'height': the final size {w}x{h} must be multiples of "
                         f"{SIZE_MULTIPLE}, at least {MIN_SIDE} (stage 1 runs at half of it)")
    return frames, rate, w, h


def source_audio_span(waveform: torch.Tensor, sample_rate: int, source_frames: int, kept_frames: int,
                      fps: Fraction) -> torch.Tensor:
    """The reference audio: the whole, untrimmed track (DubIt does not cut it to the 8k + 1 frames); when
    ``max_frames`` cut the clip itself, the track up to the end of the frames the user kept."""
    if kept_frames >= source_frames:
        return waveform
    return waveform[..., : int(round(float(kept_frames / fps) * sample_rate))]


def voice_span(waveform: torch.Tensor, sample_rate: int, frames: int, fps: Fraction) -> torch.Tensor:
    """The given speech cut or zero-padded to the dubbed clip, plus one latent's worth (the latent is cut
    to the target length after encoding, so the causal VAE sees the whole last latent frame)."""
    from ..models.just_dub_it.av_codec import fit_waveform

    seconds = float(frames / fps) + 1.0 / 25.0
    return fit_waveform(waveform.float(), int(sample_rate), seconds)


def fit_audio_latent(latent: torch.Tensor, frames: int) -> torch.Tensor:
    """[1, C, T, M] cut to ``frames`` (the VAE may give one more); too short is an error, not a pad."""
    if latent.shape[2] < frames:
        raise ValueError(f"the speech latent has {latent.shape[2]} frames, the clip needs {frames}")
    return latent[:, :, :frames]


# ---- stages -------------------------------------------------------------------------------------

def _denoiser(model, video: TokenState, audio: TokenState, text: TextContext, audio_frozen: bool):
    """One conditional pass per step (SimpleDenoiser); no masks. The prompt AdaLN and the cross-stream gate
    read each stream's scalar sigma, 0 for a frozen stream (ltx_core Modality.sigma)."""

    def denoise(latents, sigma):
        vl, al = latents
        return model.denoise(vl, al, video.timesteps(sigma), audio.timesteps(sigma), video.positions,
                             audio.positions, text.video, text.audio, None, None,
                             video_sigma=sigma, audio_sigma=0.0 if audio_frozen else sigma)

    return denoise


def _noise(generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return torch.randn(like.shape, generator=generator, device=generator.device, dtype=torch.float32).to(like)


@torch.no_grad()
def dubit_stage1(model, source: DubItSource, text: TextContext, generator: torch.Generator, *,
                 reference_strength: float = 1.0, sigmas: torch.Tensor | None = None,
                 callback: Callable[[int, int], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(video latent [1, C, F, h, w] at half size, audio latent [1, C, T, M]) of the dub."""
    device = source.video_half.device
    sigmas = torch.tensor(DISTILLED_SIGMAS) if sigmas is None else sigmas
    video = dubit_video_state(source.video_half, float(source.fps), reference_strength=reference_strength)
    if source.voice is None:
        audio = dubit_audio_state(source.audio, source.audio_frames)
    else:  # own voice: frozen from the start, its own latent as the reference (as DubIt's stage 2)
        audio = dubit_audio_state(source.voice, source.audio_frames, target=source.voice, frozen=True)
    # ltx_core's noiser draws over every stream, video first; clean tokens keep their values (mask 0).
    video = add_noise(video, _noise(generator, video.latent), float(sigmas[0]))
    audio = add_noise(audio, _noise(generator, audio.latent), float(sigmas[0]))
    denoise = _denoiser(model, video, audio, text, audio_frozen=source.voice is not None)
    video, audio = euler_sample([video, audio], sigmas.to(device), denoise, callback)
    _, _, f, h, w = source.video_half.shape
    return unpatchify_video(video.target(), f, h, w), unpatchify_audio(audio.target(), source.audio.shape[1])


@torch.no_grad()
def dubit_stage2(model, source: DubItSource, upscaled: torch.Tensor, audio_latent: torch.Tensor, text: TextContext,
                 generator: torch.Generator, *, reference_strength: float = 1.0, sigmas: torch.Tensor | None = None,
                 callback: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """The final-size video latent: the upscaled stage-1 latent re-noised to ``sigmas[0]`` and denoised with
    the audio frozen (target and reference both ``audio_latent``)."""
    device = source.video_full.device
    sigmas = torch.tensor(STAGE2_SIGMAS) if sigmas is None else sigmas
    if tuple(upscaled.shape) != tuple(source.video_full.shape):
        raise ValueError(f"the upscaled latent {tuple(upscaled.shape)} does not match the final-size reference "
                         f"{tuple(source.video_full.shape)}")
    video = dubit_video_state(source.video_full, float(source.fps), target=upscaled,
                              reference_strength=reference_strength)
    audio = dubit_audio_state(audio_latent, audio_latent.shape[2], target=audio_latent, frozen=True)
    video = add_noise(video, _noise(generator, video.latent), float(sigmas[0]))
    denoise = _denoiser(model, video, audio, text, audio_frozen=True)
    video, _ = euler_sample([video, audio], sigmas.to(device), denoise, callback)
    _, _, f, h, w = source.video_full.shape
    return unpatchify_video(video.target(), f, h, w)


def dubit(model, upsample: Callable[[torch.Tensor], torch.Tensor], source: DubItSource, text: TextContext, *,
          seed: int = 0, reference_strength: float = 1.0,
          callback: Callable[[int, int], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Both stages on the model's device: (final-size video latent, audio latent), float on CPU.

    ``upsample``: normalised half-size latent -> normalised x2 latent (the spatial upscaler with the video
    VAE's statistics). The audio is the stage-1 audio, or the given speech's latent in own-voice mode.
    """
    if not 0.0 <= reference_strength <= 1.0:
        raise ValueError(f"reference_strength must be in [0, 1], got {reference_strength}")
    device = next(model.parameters()).device
    source = DubItSource(source.video_half.to(device), source.video_full.to(device), source.audio.to(device),
                         source.frames, source.fps, None if source.voice is None else source.voice.to(device))
    text = TextContext(text.video.to(device), text.audio.to(device))
    total = len(DISTILLED_SIGMAS) - 1 + len(STAGE2_SIGMAS) - 1
    first = len(DISTILLED_SIGMAS) - 1

    def stage2_progress(i: int, n: int) -> None:
        if callback is not None:
            callback(first + i, total)

    generator = torch.Generator(device=device).manual_seed(seed)  # one noise stream for both stages
    video, audio = dubit_stage1(model, source, text, generator, reference_strength=reference_strength,
                                callback=None if callback is None else (lambda i, n: callback(i, total)))
    upscaled = upsample(video).to(device)
    video = dubit_stage2(model, source, upscaled, audio, text, generator, reference_strength=reference_strength,
                         callback=stage2_progress)
    return video.float().cpu(), audio.float().cpu()


# ---- the clip in (what the nodes and a script call) ----------------------------------------------

def encode_source(video_vae, audio_vae, images: torch.Tensor, fps, waveform: torch.Tensor, sample_rate: int, *,
                  width: int = 0, height: int = 0, max_frames: int = 0, voice: tuple[torch.Tensor, int] | None = None,
                  node: str = "DubIt Sampler") -> DubItSource:
    """IMAGE frames [T, H, W, 3] + the source audio [C, N] (+ the given speech ``(waveform, rate)``) ->
    :class:`DubItSource` on CPU. The reference video is re-encoded per stage (dubit.py), each size
    resized from the source frames (cover, centre crop)."""
    from ..models.just_dub_it.av_codec import encode_audio, encode_video, fit_frames, waveform_to_mel

    frames, rate, w, h = dubit_geometry(images, fps, max_frames, width, height, node)
    clip = images[:frames]
    half = encode_video(video_vae, fit_frames(clip, h // 2, w // 2)).cpu()
    full = encode_video(video_vae, fit_frames(clip, h, w)).cpu()
    src = source_audio_span(waveform.float(), sample_rate, images.shape[0],
                            images.shape[0] if max_frames <= 0 else min(images.shape[0], max_frames), rate)
    if src.shape[-1] == 0:
        raise ValueError(f"{node}: input 'audio': the source audio is empty")
    audio = encode_audio(audio_vae, waveform_to_mel(src, sample_rate, audio_vae)).cpu()
    source = DubItSource(half, full, audio, frames, rate)
    if voice is not None:
        wave, voice_rate = voice
        if wave.numel() == 0 or float(wave.abs().max()) == 0.0:
            raise ValueError(f"{node}: input 'voice': the speech is silent or empty")
        latent = encode_audio(audio_vae, waveform_to_mel(voice_span(wave, voice_rate, frames, rate), voice_rate,
                                                         audio_vae)).cpu()
        source.voice = fit_audio_latent(latent, source.audio_frames)
    return source


def voice_track(voice: torch.Tensor, sample_rate: int, duration_s: float, *, effects: tuple[torch.Tensor, int] | None = None,
                music: tuple[torch.Tensor, int] | None = None, duck_depth_db: float = 10.0, channels: int = 2
                ) -> tuple[torch.Tensor, int]:
    """The own-voice soundtrack: the given speech as the dialogue, cut or padded to the clip, and optionally the
    source's non-speech stems under it, ducked while the new speech plays (the pack's sidechain ducking,
    ``media.mix``). Nothing is loudness-normalised: the speech keeps the level it was recorded at."""
    from ..media.mix import Track, mix_tracks
    from ..models.just_dub_it.av_codec import fit_waveform

    speech = fit_waveform(voice.float(), int(sample_rate), duration_s)
    if effects is None and music is None:
        return speech, int(sample_rate)
    tracks = [Track(speech, int(sample_rate), role="dialogue", name="voice")]
    for role, stem in (("effects", effects), ("music", music)):
        if stem is not None:
            tracks.append(Track(fit_waveform(stem[0].float(), int(stem[1]), duration_s), int(stem[1]), role=role,
                                name=role))
    rate = int(sample_rate)
    ducking = dict(depth_db=duck_depth_db) if duck_depth_db > 0 else None
    result = mix_tracks(tracks, sample_rate=rate, channels=channels, target_lufs=None, true_peak_db=-1.0,
                        ducking=ducking, length=int(duration_s * rate))
    return result.mix, rate
