"""The sample inputs the example workflows load, made from the synthetic world.

`python -m soundstage synth --samples input/` writes every file a bundled workflow names, so each
example opens with its inputs in place (models aside). File names are the workflows' own.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .clip import ClipSpec, generate_clip, write_video
from .splits import clip_spec


def _save(path: Path, wave: np.ndarray, rate: int) -> None:
    from ..media.save_audio import save_audio

    fmt = {".wav": "wav_float", ".flac": "flac", ".mp3": "mp3"}[path.suffix]
    save_audio(path, torch.from_numpy(np.ascontiguousarray(wave, np.float32))[None], rate, fmt)


DUALDUB_SAMPLE = 2  # held-out index of soundtrack_dualdub's clip; the workflow's transcript is its sentence
# held-out index of the Ovi workflows' clip (t2av_ovi's prompt is its caption, i2av_ovi starts from its first
# frame), at the length, size and frame rate the Ovi default was trained at (training/defaults/ovi.py, full)
OVI_SAMPLE, OVI_SECONDS, OVI_SIZE, OVI_FPS = 10, 49 / 24, 64, 24  # 49 frames: 13 Wan latents


# held-out index of dub_video's clip (JUST-DUB-IT's tiny default dubs it from English into French), at the length,
# size and frame rate the default was trained at (training/defaults/just_dub_it.py, full: 49 frames = 7 latents)
DUB_SAMPLE, DUB_FRAMES, DUB_SIZE, DUB_FPS = 3, 49, 64, 25
DUB_INPUT = "dub_input.mp4"


def dub_sample_clip(language: str = "en"):
    """The dub sample clip (``language`` "fr" / "de": the same clip in the target language, its ground truth)."""
    return generate_clip(clip_spec("heldout", DUB_SAMPLE, task="full", language=language, seconds=DUB_FRAMES / DUB_FPS,
                                   size=DUB_SIZE, fps=DUB_FPS))


def dualdub_sample_transcript() -> str:
    return generate_clip(clip_spec("heldout", DUALDUB_SAMPLE, task="full", seconds=4.0, size=64)).truth["transcript"]


# held-out index of video_to_speech's clip (its transcript is the workflow's), at the length and size the
# AudioGen-Omni speech default was trained at (training/defaults/audiogen_omni_speech.py, full)
SPEECH_SAMPLE, SPEECH_SECONDS, SPEECH_SIZE = 2, 4.0, 128
# held-out index of song_from_lyrics's song clip (its sentence is the workflow's lyrics, its tune the prompt's), at
# the length the AudioGen-Omni song default was trained at (training/defaults/audiogen_omni_song.py, full)
SONG_SAMPLE, SONG_SECONDS = 1, 4.0


def speech_sample_clip():
    return generate_clip(clip_spec("heldout", SPEECH_SAMPLE, task="speech", seconds=SPEECH_SECONDS, size=SPEECH_SIZE))


def song_sample_clip():
    """The held-out song clip song_from_lyrics sings (its frames are never read: drawn small)."""
    return generate_clip(clip_spec("heldout", SONG_SAMPLE, task="speech", seconds=SONG_SECONDS, size=32, voice="sing"))


def ovi_sample_clip():
    return generate_clip(clip_spec("heldout", OVI_SAMPLE, task="full", seconds=OVI_SECONDS, size=OVI_SIZE,
                                   fps=OVI_FPS))


def write_workflow_samples(out: str | Path, *, seed: int = 0, seconds: float = 3.0, size: int = 128) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rate = 16000
    en = generate_clip(ClipSpec(seed=seed, seconds=seconds, width=size, height=size, sample_rate=rate, speaker="spk1"))
    stems = en.stems
    written = []

    def video(name: str, audio: np.ndarray | None) -> None:
        write_video(out / name, en.frames, en.spec.fps, audio, rate)
        written.append(out / name)

    def audio(name: str, wave: np.ndarray) -> None:
        _save(out / name, wave, rate)
        written.append(out / name)

    talking = speech_sample_clip()  # silent talking face in, its speech out (video_to_speech)
    write_video(out / "talking_head_silent.mp4", talking.frames, talking.spec.fps, None, rate)
    written.append(out / "talking_head_silent.mp4")
    # DualDub: a held-out talking clip at the length and size its default was trained at, the reference
    # voice another held-out line of the same speaker (speakers go round the index)
    talk = generate_clip(clip_spec("heldout", DUALDUB_SAMPLE, task="full", seconds=4.0, size=64, sample_rate=rate))
    talk_ref = generate_clip(clip_spec("heldout", DUALDUB_SAMPLE + 4, task="full", seconds=4.0, size=64,
                                       sample_rate=rate))
    write_video(out / "dualdub_input.mp4", talk.frames, talk.spec.fps, None, rate)
    written.append(out / "dualdub_input.mp4")
    # video to audio: a held-out clip of the world the AudioGen-Omni default knows (balls and the lamp, silent face)
    v2a = generate_clip(clip_spec("heldout", 2, task="v2a", seconds=seconds, size=size, sample_rate=rate))
    write_video(out / "soundtrack_input.mp4", v2a.frames, v2a.spec.fps, None, rate)
    written.append(out / "soundtrack_input.mp4")
    for name in ("dub_source.mp4", "dub_clip.mp4"):
        video(name, en.mix)
    # JUST-DUB-IT's tiny default: a held-out English clip with its speech and the balls' sound (no music, as trained)
    dub = dub_sample_clip()
    write_video(out / DUB_INPUT, dub.frames, dub.spec.fps, dub.stems["speech"] + dub.stems["effects"], rate)
    written.append(out / DUB_INPUT)
    audio("reference_voice.wav", talk_ref.stems["speech"])
    audio("speech.wav", stems["speech"])
    audio("dialogue.wav", stems["speech"])
    audio("effects.flac", stems["effects"])
    audio("music.mp3", stems["music"])
    audio("mtv_mixture.wav", en.mix)
    for stem in ("speech", "effects", "music"):
        audio(f"mtv_{stem}.wav", stems[stem])
    from PIL import Image

    Image.fromarray(ovi_sample_clip().frames[0]).save(out / "ovi_start.png")
    written.append(out / "ovi_start.png")
    return written
