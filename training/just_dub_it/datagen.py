"""Paired-data generation tools for JUST-DUB-IT training (paper 3.2 and A.1).

1. Generate a language-switching clip with the base model (:func:`language_switch_prompt`, the
   paper A.1 timed prompt; :mod:`.datagen_generate` samples and writes the clips).
2. For each half, find the lips (:func:`lip_masks`, MediaPipe face mesh) and turn the pixel mask
   into the *effective* latent mask, the full extent the VAE spreads it to
   (:func:`effective_latent_mask`: |E(masked) - E(black)| > 0.1).
3. Re-generate the half in the other language: noise only the masked video tokens and the half's
   audio (:func:`inpainting_states`, :func:`audio_span_mask`), and denoise with
   :func:`..sampler.euler_sample`; the other half stays clean in the sequence, so the voice and
   phonetics of the target language condition the result (paper 3.2, Fig. 2 and 3).
4. Inpaint the half a second time with a nonsense letter-spelling prompt (lip augmentation,
   :func:`lip_augmentation_prompt`) and merge: audio of pass 1, video of pass 2 (:func:`merge_passes`).

The end-to-end pair builder is :mod:`.datagen_pairs`; the dataset-folder builder :mod:`.datagen_folder`.
"""
from __future__ import annotations

import random
import string
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from ...models.just_dub_it.in_context import TokenState, audio_positions, patchify_audio, patchify_video, video_positions

EFFECTIVE_MASK_THRESHOLD = 0.1  # paper A.1, tau
# MediaPipe face-mesh landmark indices of the outer lip contour.
LIP_LANDMARKS = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)


PAUSE_SECONDS = 2.0  # paper A.1's example: [00:04–00:06] SILENT PAUSE between two 4 s segments


@dataclass(frozen=True)
class SwitchTiming:
    """The timed segments of a paper A.1 prompt, in seconds: language A in ``[0, pause_start)``, a
    SILENT PAUSE, language B in ``[pause_end, end)``."""

    pause_start: float
    pause_end: float
    end: float

    @classmethod
    def for_duration(cls, duration: float, pause: float = PAUSE_SECONDS, first: float | None = None) -> "SwitchTiming":
        """Segments of a ``duration``-second clip; language A gets ``first`` seconds (default: half the speech)."""
        if pause < 0 or pause >= duration or (first is not None and not 0 < first < duration - pause):
            raise ValueError(f"a {duration:.2f} s clip has no room for speech on both sides of a {pause:g} s pause"
                             + ("" if first is None else f" after {first:g} s of the first language"))
        first = (duration - pause) / 2 if first is None else first
        return cls(first, first + pause, duration)

    def switch_frame(self, fps: float) -> int:
        """The frame in the middle of the pause: where the clip is cut into its two languages."""
        return int(round((self.pause_start + self.pause_end) / 2 * fps, 6) + 0.5)  # a half frame rounds up


def _timestamp(seconds: float) -> str:
    """``MM:SS`` as in paper A.1, with tenths of a second only where the bound is not whole."""
    tenths = int(round(seconds * 10, 6) + 0.5)  # half a tenth rounds up, as the switch frame does
    minutes, rest = divmod(tenths, 600)
    text = f"{minutes:02d}:{rest // 10:02d}"
    return f"{text}.{rest % 10}" if rest % 10 else text


def _segment(start: float, end: float, *parts: str) -> str:
    body = " ".join(p.strip() for p in parts if p and p.strip())
    return f"At [{_timestamp(start)}–{_timestamp(end)}]: {body}"  # paper A.1 writes the range with an en dash


def language_switch_prompt(scene: str, lang_a: str, line_a: str, lang_b: str, line_b: str, *,
                           timing: SwitchTiming | None = None, speaker: str = "The speaker",
                           actions: Sequence[str] = ("", "", "")) -> str:
    """One clip in which the speaker switches language (paper 3.2).

    With ``timing`` it is paper A.1's structured prompt: ``scene``, then "At [00:00–00:04]:
    <action> <speaker> speaks in A, saying: "..." At [00:04–00:06]: SILENT PAUSE. <action> At
    [00:06–00:10]: <action> <speaker> speaks in B, saying: "..."``; ``actions`` are what the
    speaker does in the three segments. Without it, an untimed switch half-way.
    """
    if timing is None:
        return (f"{scene.strip()} The speaker first says in {lang_a}: \"{line_a.strip()}\" "
                f"Then, without pausing, the speaker switches to {lang_b} and says: \"{line_b.strip()}\"")
    if len(actions) != 3:
        raise ValueError(f"actions: one per segment (first language, pause, second language), got {len(actions)}")
    who = speaker.strip() or "The speaker"
    return " ".join([
        scene.strip(),
        _segment(0.0, timing.pause_start, actions[0], f"{who} speaks in {lang_a}, saying: \"{line_a.strip()}\""),
        _segment(timing.pause_start, timing.pause_end, "SILENT PAUSE.", actions[1]),
        _segment(timing.pause_end, timing.end, actions[2], f"{who} speaks in {lang_b}, saying: \"{line_b.strip()}\""),
    ]).strip()


def dialogue_prompt(scene: str, language: str, line: str) -> str:
    """The prompt of one half in one language: the pass-1 inpainting prompt and the pair's caption."""
    return f"{scene.strip()} The speaker says in {language}: \"{line.strip()}\"".strip()


def lip_augmentation_prompt(scene: str, seed: int, letters: int = 5) -> str:
    """Nonsense letter-by-letter speech for the second inpainting pass (paper 3.2 / A.1: "she is
    speaking 'A..B..C'"), which exaggerates articulation so the lips move visibly differently."""
    if letters < 1:
        raise ValueError(f"letters must be >= 1, got {letters}")
    chosen = random.Random(seed).choices(string.ascii_uppercase, k=letters)
    return f"{scene.strip()} The speaker is slowly spelling out letters, clearly articulating each one: \"{'..'.join(chosen)}\"".strip()


def effective_latent_mask(
    encode: Callable[[torch.Tensor], torch.Tensor], mask_frames: torch.Tensor, tau: float = EFFECTIVE_MASK_THRESHOLD
) -> torch.Tensor:
    """Latent tokens the masked region reaches: ``|E(mask video) - E(black video)| > tau``.

    ``mask_frames`` [F, 3, H, W] in 0..1 shows the masked region (white) on black; ``encode`` maps
    frames to normalised latents [1, C, f, h, w]. Returns a bool [f, h, w] token mask (any channel).
    """
    masked = encode(mask_frames)
    empty = encode(torch.zeros_like(mask_frames))
    return ((masked - empty).abs() > tau).any(dim=1)[0]


def lip_masks(frames: torch.Tensor, dilate: int = 8) -> torch.Tensor:
    """[F, H, W, 3] 0..1 frames -> [F, H, W] lip masks from MediaPipe face mesh (largest face)."""
    import numpy as np
    from PIL import Image, ImageDraw

    from ...metrics.lips import mesh_points  # optional: mediapipe==0.10.21 ships the face-mesh model

    f, h, w, _ = frames.shape
    points = mesh_points(frames.float().numpy(), [(j,) for j in LIP_LANDMARKS])
    out = torch.zeros(f, h, w)
    for i, pts in enumerate(points):
        if np.isnan(pts).any():
            continue
        img = Image.new("L", (w, h), 0)
        ImageDraw.Draw(img).polygon([tuple(p) for p in pts], fill=255)
        out[i] = torch.from_numpy(np.array(img) > 0).float()
    if dilate:
        out = torch.nn.functional.max_pool2d(out[:, None], 2 * dilate + 1, 1, dilate)[:, 0]
    return out


def hold_missing_masks(masks: torch.Tensor) -> torch.Tensor:
    """[F, H, W]: frames where no lips were found take the mask of the nearest frame that has one
    (a closed or turned mouth still has to be regenerated, or its tokens would pin the motion)."""
    found = masks.flatten(1).any(dim=1).nonzero().flatten()
    if found.numel() == 0 or found.numel() == masks.shape[0]:
        return masks
    frames = torch.arange(masks.shape[0], device=masks.device)
    nearest = found[(frames[:, None] - found[None, :]).abs().argmin(dim=1)]
    return masks[nearest]


def inpainting_states(
    video_latent: torch.Tensor,
    audio_latent: torch.Tensor,
    latent_mask: torch.Tensor,
    fps: float,
    video_noise: torch.Tensor,
    audio_noise: torch.Tensor,
    audio_mask: torch.Tensor | None = None,
) -> tuple[TokenState, TokenState]:
    """Token states that regenerate only the masked video tokens and the audio (paper A.1).

    ``audio_mask`` [T] bool picks the audio latent frames to regenerate (default: all of them);
    when a whole language-switch clip is inpainted, it is the half being re-spoken.
    """
    b, c, f, h, w = video_latent.shape
    v_clean = patchify_video(video_latent)
    v_mask = latent_mask.reshape(1, f * h * w, 1).to(v_clean.dtype).expand(b, -1, -1)
    a_clean = patchify_audio(audio_latent)
    t = a_clean.shape[1]
    if audio_mask is None:
        a_mask = torch.ones(b, t, 1, dtype=a_clean.dtype, device=a_clean.device)
    else:
        a_mask = audio_mask.reshape(1, t, 1).to(a_clean).expand(b, -1, -1)
    video = TokenState(video_noise * v_mask + v_clean * (1 - v_mask), v_clean, v_mask,
                       video_positions(f, h, w, fps, batch=b, device=v_clean.device), f * h * w)
    audio = TokenState(audio_noise * a_mask + a_clean * (1 - a_mask), a_clean, a_mask,
                       audio_positions(t, batch=b, device=a_clean.device), t)
    return video, audio


def audio_span_mask(frames: int, start_s: float, end_s: float) -> torch.Tensor:
    """Bool [frames]: audio latent frames whose time span overlaps ``[start_s, end_s)``."""
    bounds = audio_positions(frames)[0, 0]
    return (bounds[:, 1] > start_s) & (bounds[:, 0] < end_s)


@dataclass
class InpaintResult:
    """One inpainting pass over a half: normalised latents of the half as re-generated."""

    video: torch.Tensor  # [1, C, f, h, w]
    audio: torch.Tensor  # [1, C, t, m]
    prompt: str


@dataclass
class MergedContext:
    """The training context of a pair: lip-augmented video with the correctly translated audio."""

    video: torch.Tensor
    audio: torch.Tensor
    video_prompt: str
    audio_prompt: str


def merge_passes(translated: InpaintResult, augmented: InpaintResult) -> MergedContext:
    """Paper A.1: "The audio from the first inpainting pass and the video from the second pass are
    merged to form a context video"; their asynchrony is what modality isolation absorbs (3.3)."""
    if translated.video.shape != augmented.video.shape or translated.audio.shape != augmented.audio.shape:
        raise ValueError("the two inpainting passes must cover the same half (latent shapes differ)")
    return MergedContext(augmented.video, translated.audio, augmented.prompt, translated.prompt)


def split_frames(frames: int) -> Sequence[slice]:
    """The two halves of a language-switch clip, each a valid 8k+1 frame count."""
    half = ((frames - 1) // 2) // 8 * 8 + 1
    if half < 9:
        raise ValueError(f"clip of {frames} frames is too short to split into two 8k+1 halves")
    return slice(0, half), slice(frames - half, frames)
