"""One language-switching clip -> JUST-DUB-IT training pairs (paper 3.2, A.1), end to end.

For each half (the *target*, as generated in its own language):

1. the lip masks of that half become an effective latent mask over the whole clip
   (|E(mask) - E(black)| > tau, so the tokens the VAE leaks lip motion into are noised too);
2. pass 1 re-speaks the half in the other half's language: its masked video tokens and its audio
   are noised, everything else (the other half above all, which carries the speaker's voice in the
   target language: the identity-pronunciation trade-off of Fig. 3) stays clean;
3. pass 2 inpaints the same tokens with a nonsense letter-spelling prompt (lip augmentation);
4. merge: video of pass 2 + audio of pass 1 = the pair's context; the original half = its target.

The pair is written in the layout :class:`.train.LatentPairs` reads (``python -m soundstage train
dubbing-lora --data DIR``): target/ref latents, the target's caption through the text connectors,
and the half's effective latent mask as ``fg_mask`` for the 10:1 masked loss (paper A.3).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
import zlib
from typing import Callable

import torch

import torchaudio

from ...models.just_dub_it.av_codec import decode_audio, decode_video, encode_audio, encode_video, fit_frames, waveform_to_mel
from .datagen import (
    EFFECTIVE_MASK_THRESHOLD,
    InpaintResult,
    audio_span_mask,
    dialogue_prompt,
    effective_latent_mask,
    hold_missing_masks,
    inpainting_states,
    lip_augmentation_prompt,
    lip_masks,
    merge_passes,
    split_frames,
)
from ...models.just_dub_it.in_context import unpatchify_audio, unpatchify_video
from ...models.just_dub_it.sampler import cfg_combine, euler_sample
from ...models.just_dub_it.schedule import DEFAULT_CFG, DEFAULT_STEPS, ltx2_sigmas, valid_frame_count
from ...models.just_dub_it.transformer import InContextTransformer

# prompts [B] -> (video context, audio context), each [B, L, caption_channels] after the connectors
TextEncodeFn = Callable[[list[str]], tuple[torch.Tensor, torch.Tensor]]
LipMaskFn = Callable[[torch.Tensor], torch.Tensor]  # [F, H, W, 3] 0..1 -> [F, H, W] in {0, 1}
PAIR_FORMAT = "soundstage-dubbing-pair/1"


class NoLipsFound(ValueError):
    """A half in which the lip finder found nothing, so nothing of its video would be regenerated."""


@dataclass
class SwitchHalf:
    language: str  # e.g. "English"
    line: str  # what is said in this half
    translation: str  # the same line in the other half's language (the pass-1 dialogue)


@dataclass
class SwitchClip:
    """A clip whose speaker switches language once (paper 3.2), in pixels and samples."""

    frames: torch.Tensor  # [F, H, W, 3] float 0..1
    waveform: torch.Tensor  # [C, N]
    sample_rate: int
    fps: float
    scene: str
    halves: tuple[SwitchHalf, SwitchHalf]
    switch_frame: int | None = None  # first frame of the second language; None = the middle
    name: str = "clip"


@dataclass
class DatagenModels:
    transformer: InContextTransformer
    video_vae: torch.nn.Module
    audio_vae: torch.nn.Module
    vocoder: torch.nn.Module
    encode_text: TextEncodeFn


@dataclass
class DatagenConfig:
    steps: int = DEFAULT_STEPS
    cfg: float = DEFAULT_CFG
    negative_prompt: str = ""
    width: int = 0  # 0 = the clip's width floored to a multiple of 32
    height: int = 0
    tau: float = EFFECTIVE_MASK_THRESHOLD
    letters_per_second: float = 2.0  # length of the lip-augmentation spelling
    seed: int = 0


@dataclass
class Pair:
    tensors: dict[str, torch.Tensor]  # what is saved (the trainer's keys)
    meta: dict = field(default_factory=dict)
    # Not saved: the half's pixels, uint8 [f, H, W, 3], "target" and "context" (for quality control).
    frames: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)


# ---- clip geometry ----------------------------------------------------------------------------

def half_slices(frames: int, switch_frame: int | None) -> tuple[slice, slice]:
    """8k+1-frame halves inside a clip of ``frames`` (itself 8k+1); with a known switch frame
    neither half crosses the language switch."""
    if switch_frame is None:
        first, second = split_frames(frames)
        return first, second
    if not 9 <= switch_frame <= frames - 9:
        raise ValueError(f"switch frame {switch_frame} leaves a half shorter than 9 frames in a {frames}-frame clip")
    return slice(0, valid_frame_count(switch_frame)), slice(switch_frame, switch_frame + valid_frame_count(frames - switch_frame))


def _size(clip: SwitchClip, cfg: DatagenConfig) -> tuple[int, int]:
    h = cfg.height or clip.frames.shape[1] // 32 * 32
    w = cfg.width or clip.frames.shape[2] // 32 * 32
    if h < 32 or w < 32 or h % 32 or w % 32:
        raise ValueError(f"{clip.name}: width/height {w}x{h} must be multiples of 32 (LTX-2 VAE)")
    return h, w


def _span(s: slice, fps: float) -> tuple[float, float]:
    return s.start / fps, s.stop / fps


def _seed(base: int, clip: str, half: int, what: str) -> int:
    """Distinct, reproducible draws per clip, half and pass (the same seed must not give every clip
    the same noise or the same spelled letters)."""
    return (base * 1_000_003 + zlib.crc32(f"{clip}/{half}/{what}".encode())) % 2**63


# ---- codec helpers ----------------------------------------------------------------------------

def vae_rate_window(models: DatagenModels, waveform: torch.Tensor, sample_rate: int, start_frame: int, frames: int,
                    fps: float) -> torch.Tensor:
    """The samples under ``frames`` video frames from ``start_frame``, at the audio VAE's rate, with an
    exact sample count, so original and re-generated audio of a half give latents of one length."""
    rate = int(models.audio_vae.config.sample_rate)
    wav = waveform.float().cpu()  # the mel front end (av_codec.waveform_to_mel) runs on the CPU
    if sample_rate != rate:
        wav = torchaudio.functional.resample(wav, sample_rate, rate)
    start, n = round(start_frame * rate / fps), round(frames * rate / fps)
    wav = wav[..., start : start + n]
    return torch.nn.functional.pad(wav, (0, n - wav.shape[-1]))


def encode_av(models: DatagenModels, pixels: torch.Tensor, waveform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[F, 3, H, W] 0..1 + [C, N] at the audio VAE's rate -> (video [1, C, f, h, w], audio [1, C, t, m])."""
    video = encode_video(models.video_vae, pixels)
    rate = int(models.audio_vae.config.sample_rate)
    audio = encode_audio(models.audio_vae, waveform_to_mel(waveform, rate, models.audio_vae))
    return video, audio


def half_effective_mask(models: DatagenModels, lips: torch.Tensor, tau: float) -> torch.Tensor:
    """[F, H, W] pixel lip masks -> bool latent mask (white lips on black, paper A.1)."""
    frames = lips.float().clamp(0, 1)[:, None].expand(-1, 3, -1, -1)
    return effective_latent_mask(lambda x: encode_video(models.video_vae, x), frames, tau)


# ---- inpainting -------------------------------------------------------------------------------

@torch.no_grad()
def inpaint(models: DatagenModels, video_latent: torch.Tensor, audio_latent: torch.Tensor, latent_mask: torch.Tensor,
            audio_mask: torch.Tensor, fps: float, prompt: str, cfg: DatagenConfig, seed: int,
            callback: Callable[[int, int], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Regenerate the masked video tokens and audio frames of one clip; the rest stays as encoded.

    The base model sees one ordinary clip here (no appended context), so cross-modal attention is
    unrestricted: no isolation masks, unlike in-context dubbing.
    """
    model = models.transformer
    device = next(model.parameters()).device
    video_latent, audio_latent = video_latent.to(device), audio_latent.to(device)
    g = torch.Generator(device="cpu").manual_seed(seed)
    n_video = latent_mask.numel()
    v_noise = torch.randn(1, n_video, video_latent.shape[1], generator=g).to(device)
    a_noise = torch.randn(1, audio_latent.shape[2], audio_latent.shape[1] * audio_latent.shape[3], generator=g).to(device)
    video, audio = inpainting_states(video_latent, audio_latent, latent_mask.to(device), fps, v_noise, a_noise,
                                     audio_mask=audio_mask.to(device))
    guided = cfg.cfg != 1.0
    vctx, actx = models.encode_text([prompt, cfg.negative_prompt] if guided else [prompt])
    vctx, actx = vctx.to(device), actx.to(device)

    def denoise(latents, sigma):
        vl, al = latents
        b = vctx.shape[0]
        v_den, a_den = model.denoise(
            vl.expand(b, -1, -1), al.expand(b, -1, -1),
            video.timesteps(sigma).expand(b, -1, -1), audio.timesteps(sigma).expand(b, -1, -1),
            video.positions.expand(b, -1, -1, -1), audio.positions.expand(b, -1, -1, -1), vctx, actx,
        )
        if not guided:
            return v_den, a_den
        return cfg_combine(v_den[:1], v_den[1:], cfg.cfg), cfg_combine(a_den[:1], a_den[1:], cfg.cfg)

    sigmas = ltx2_sigmas(cfg.steps).to(device)
    video, audio = euler_sample([video, audio], sigmas, denoise, callback)
    _, c, f, h, w = video_latent.shape
    return unpatchify_video(video.latent, f, h, w).cpu(), unpatchify_audio(audio.latent, audio_latent.shape[1]).cpu()


def _half_of(models: DatagenModels, video_latent: torch.Tensor, audio_latent: torch.Tensor, s: slice, fps: float,
             size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Latents of one half of an inpainted clip, re-encoded from its decoded pixels and samples
    (the halves do not sit on latent-frame boundaries of the whole clip), and its uint8 frames."""
    frames = decode_video(models.video_vae, video_latent)[s]  # [f, H, W, 3]
    wav, rate = decode_audio(models.audio_vae, models.vocoder, audio_latent)
    window = vae_rate_window(models, wav, rate, s.start, s.stop - s.start, fps)
    video, audio = encode_av(models, fit_frames(frames, *size), window)
    return video, audio, _uint8(frames)


def _uint8(frames: torch.Tensor) -> torch.Tensor:
    return (frames.float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()


# ---- pairs ------------------------------------------------------------------------------------

def _steps_callback(callback, offset: int, total: int):
    if callback is None:
        return None
    return lambda done, _n: callback(offset + done, total)


def build_pair(models: DatagenModels, clip: SwitchClip, half: int, cfg: DatagenConfig | None = None, *,
               lip_mask_fn: LipMaskFn = lip_masks, callback: Callable[[int, int], None] | None = None,
               require_lips: bool = False, _step_offset: int = 0, _step_total: int | None = None) -> Pair:
    """The training pair whose target is half ``half`` (0 or 1) of ``clip`` as generated.

    With ``require_lips`` a half without lips raises :class:`NoLipsFound` before any sampling.
    """
    cfg = cfg or DatagenConfig()
    if half not in (0, 1):
        raise ValueError(f"half must be 0 or 1, got {half}")
    total_steps = _step_total or 2 * cfg.steps
    h, w = _size(clip, cfg)
    n = valid_frame_count(clip.frames.shape[0])
    slices = half_slices(n, clip.switch_frame)
    s = slices[half]
    pixels = fit_frames(clip.frames[:n], h, w)  # [n, 3, h, w]
    full_video, full_audio = encode_av(models, pixels, vae_rate_window(models, clip.waveform, clip.sample_rate, 0, n, clip.fps))

    # Lip masks of this half only; black elsewhere, so the effective mask follows the VAE's spread.
    frames_hw = pixels.permute(0, 2, 3, 1)
    lips = torch.zeros(n, h, w)
    lips[s] = hold_missing_masks(lip_mask_fn(frames_hw[s]).float())
    latent_mask = half_effective_mask(models, lips, cfg.tau)
    if require_lips and not latent_mask.any():
        raise NoLipsFound(f"{clip.name} half {half}: no lips found (or none reach the latents at tau={cfg.tau})")
    start, end = _span(s, clip.fps)
    audio_mask = audio_span_mask(full_audio.shape[2], start, end)

    this, other = clip.halves[half], clip.halves[1 - half]
    translated_prompt = dialogue_prompt(clip.scene, other.language, this.translation)
    letters = max(3, round(cfg.letters_per_second * (end - start)))  # at least the paper's "A..B..C"
    augmented_prompt = lip_augmentation_prompt(clip.scene, _seed(cfg.seed, clip.name, half, "letters"), letters)
    passes, pass_frames = [], []
    for i, prompt in enumerate((translated_prompt, augmented_prompt)):
        v, a = inpaint(models, full_video, full_audio, latent_mask, audio_mask, clip.fps, prompt, cfg,
                       seed=_seed(cfg.seed, clip.name, half, f"pass{i + 1}"),
                       callback=_steps_callback(callback, _step_offset + i * cfg.steps, total_steps))
        hv, ha, frames = _half_of(models, v, a, s, clip.fps, (h, w))
        passes.append(InpaintResult(hv, ha, prompt))
        pass_frames.append(frames)
    context = merge_passes(*passes)

    target_video, target_audio = encode_av(
        models, pixels[s], vae_rate_window(models, clip.waveform, clip.sample_rate, s.start, s.stop - s.start, clip.fps))
    caption = dialogue_prompt(clip.scene, this.language, this.line)
    video_ctx, audio_ctx = models.encode_text([caption])
    fg = half_effective_mask(models, lips[s], cfg.tau).float()[None]  # [1, f, h, w], the half's own latent grid
    tensors = {
        "target_video": target_video, "target_audio": target_audio,
        "ref_video": context.video, "ref_audio": context.audio,
        "video_context": video_ctx[:1].float().cpu(), "audio_context": audio_ctx[:1].float().cpu(),
        "fg_mask": fg,
    }
    meta = {
        "format": PAIR_FORMAT, "clip": clip.name, "half": half, "frames": [s.start, s.stop], "fps": clip.fps,
        "size": [w, h], "caption": caption, "target_language": this.language, "context_language": other.language,
        "context_audio_prompt": context.audio_prompt, "context_video_prompt": context.video_prompt,
        "masked_video_tokens": int(latent_mask.sum()), "masked_audio_frames": int(audio_mask.sum()),
        "steps": cfg.steps, "cfg": cfg.cfg, "seed": cfg.seed,
    }
    return Pair({k: v.detach().float().contiguous().cpu() for k, v in tensors.items()}, meta,
                {"target": _uint8(frames_hw[s]), "context": pass_frames[1]})  # context video = pass 2


def build_pairs(models: DatagenModels, clip: SwitchClip, cfg: DatagenConfig | None = None, *,
                lip_mask_fn: LipMaskFn = lip_masks, callback: Callable[[int, int], None] | None = None) -> list[Pair]:
    """Both pairs of a language-switching clip: each half is once the target (paper 3.2)."""
    cfg = cfg or DatagenConfig()
    return [build_pair(models, clip, half, cfg, lip_mask_fn=lip_mask_fn, callback=callback,
                       _step_offset=half * 2 * cfg.steps, _step_total=4 * cfg.steps) for half in (0, 1)]


def save_pair(pair: Pair, path: str | Path) -> Path:
    """One ``.safetensors`` per pair; the description rides in the header metadata."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(pair.tensors, str(path), metadata={"soundstage_pair": json.dumps(pair.meta)})
    return path


def text_encoder_fn(encoder, connectors, max_tokens: int) -> TextEncodeFn:
    """Gemma + the checkpoint's connectors as a :data:`TextEncodeFn`."""
    from ...models.just_dub_it.text import encode_prompts

    return lambda prompts: encode_prompts(encoder, connectors, list(prompts), max_tokens)

