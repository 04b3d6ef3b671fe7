"""Synthetic clip node: sample inputs with known answers, inside any graph."""
from __future__ import annotations

import json
from fractions import Fraction

import torch

from ..compat import InputImpl, Types, io
from ..media.audio_io import to_comfy_audio
from ..media.errors import MediaError
from ..media.memory import require
from ..synthworld.speech import LINES, SPEAKERS
from .errors import input_error

CATEGORY = "Soundstage/Evaluation"


def _audio(wave, rate: int) -> dict:
    return to_comfy_audio(torch.tensor(wave, dtype=torch.float32).reshape(1, -1), rate)  # a copy: clips are reused


def synth_clip(seed: int, seconds: float, size: int, fps: int, language: str, speaker: str, line: int, balls: int,
               speech: bool, sample_rate: int):
    from ..synthworld import ClipSpec, generate_clip
    from ..synthworld.speech import SpeechUnavailable

    frames = int(round(seconds * fps))
    try:  # uint8 frames plus their float32 IMAGE copy: 15 bytes a pixel, checked before anything is drawn
        require(frames * size * size * 15, f"{frames} frames of {size}x{size}")
    except MediaError as exc:
        raise input_error("Synthetic Clip", "seconds", f"{exc} (lower seconds, size or fps)") from None
    spec = ClipSpec(seed=seed, seconds=seconds, fps=fps, width=size, height=size, sample_rate=sample_rate,
                    language=language, speaker=speaker, line=line, n_balls=balls, speech=speech)
    try:
        clip = generate_clip(spec)
    except SpeechUnavailable as exc:
        raise input_error("SoundstageSynthClip", "speech", f"{exc}; set speech to false or install espeak-ng") from exc
    images = torch.from_numpy(clip.frames).float().div_(255.0)
    mix = _audio(clip.mix, sample_rate)
    video = InputImpl.VideoFromComponents(Types.VideoComponents(images=images, audio=mix, frame_rate=Fraction(fps)))
    stems = [_audio(clip.stems[k], sample_rate) for k in ("speech", "effects", "music")]
    return video, images, mix, *stems, clip.truth["transcript"], json.dumps(clip.truth)


class SynthClip(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SoundstageSynthClip",
            display_name="Synthetic Clip",
            category=CATEGORY,
            description="A deterministic cartoon clip with exact ground truth: a face speaking an espeak-ng line with "
                        "viseme-timed mouth, bouncing balls with impact sounds, a beeping light, music setting the mood.",
            inputs=[
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1, step=1, control_after_generate=True,
                             tooltip="same seed, same clip: picture, sounds and ground truth"),
                io.Float.Input("seconds", default=3.0, min=0.5, max=30.0, step=0.1, tooltip="clip length in seconds"),
                io.Int.Input("size", default=128, min=32, max=512, step=16, tooltip="frame width and height in pixels"),
                io.Int.Input("fps", default=25, min=1, max=60, step=1, tooltip="video frame rate"),
                io.Combo.Input("language", options=sorted(LINES), default="en", tooltip="language of the spoken line"),
                io.Combo.Input("speaker", options=sorted(SPEAKERS), default="spk0",
                               tooltip="an espeak-ng voice that can speak every language (for dubbing pairs)"),
                io.Int.Input("line", default=0, min=0, max=len(LINES["en"]) - 1, step=1, tooltip="which line is spoken"),
                io.Int.Input("balls", default=1, min=0, max=3, step=1, tooltip="bouncing balls, each with impact sounds"),
                io.Boolean.Input("speech", default=True, tooltip="a talking face with speech; off: a silent scene"),
                io.Int.Input("sample_rate", default=16000, min=8000, max=48000, step=100, tooltip="audio sample rate in Hz"),
            ],
            outputs=[
                io.Video.Output(display_name="video"),
                io.Image.Output(display_name="frames"),
                io.Audio.Output(display_name="mix"),
                io.Audio.Output(display_name="speech"),
                io.Audio.Output(display_name="effects"),
                io.Audio.Output(display_name="music"),
                io.String.Output(display_name="transcript"),
                io.String.Output(display_name="ground_truth", tooltip="JSON: word/phoneme times, events, mouth openness"),
            ],
        )

    @classmethod
    def execute(cls, seed, seconds, size, fps, language, speaker, line, balls, speech, sample_rate) -> io.NodeOutput:
        return io.NodeOutput(*synth_clip(seed, seconds, size, fps, language, speaker, line, balls, speech, sample_rate))


NODES = [SynthClip]
