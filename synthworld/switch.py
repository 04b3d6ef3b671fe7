"""Language-switch clips of the world, the first step of JUST-DUB-IT's data (paper 3.2, A.1): the speaker says a
clip's sentence in language A, pauses (the paper's SILENT PAUSE), then says the same sentence in language B, over
the same bouncing balls and blinking lamp. The same (split, index) as ``splits.clip_spec`` gives the scene, the
speaker and the sentence; every other part of the clip is drawn exactly as the plain clip draws it.

Each clip is written as ``NAME.mp4`` (speech + effects: the world's music is an off-screen track a dub need not
keep) with the ``NAME.switch.json`` sidecar ``dubbing-data --clips`` reads (training/just_dub_it/datagen_folder.py).
``switch_spec`` writes the same lines as a ``dubbing-clips --spec`` file, for switch clips sampled from a base model.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from . import sentences
from .captions import LANGUAGE_NAMES, _balls, colour_name
from .clip import BALL_COLOURS, Clip, generate_clip, write_video
from .speech import END_MARGIN_S, ESPEAK_RATE, SPEAKERS, WORD_GAP_S, join_words, synth_words
from .splits import clip_spec

PAUSE_S = 0.5  # the pause between the languages (the paper's 2 s scaled to the world's short sentences)
STEMS = ("speech", "effects")  # what a switch clip's soundtrack holds
# (first, second) language per clip index, in turn: English is once the context and once the target of each
# of French and German, so the pairs teach en -> fr, en -> de and back (datagen_pairs: each half is a target once)
LANGUAGE_ORDERS = (("en", "fr"), ("de", "en"), ("fr", "en"), ("en", "de"))


@dataclass
class SwitchClip:
    clip: Clip
    split: str
    index: int
    languages: tuple[str, str]
    lines: tuple[str, str]
    pause: tuple[float, float]  # seconds: the end of language A's last word, the start of language B's first
    switch_frame: int  # the frame in the middle of the pause: the first frame of language B

    @property
    def scene(self) -> str:
        return scene_text(self.clip)

    @property
    def audio(self) -> np.ndarray:
        return sum(self.clip.stems[s] for s in STEMS).astype(np.float32)

    def sidecar(self) -> dict:
        """The ``NAME.switch.json`` of datagen_folder.sidecar_switch_clips, and where the clip comes from."""
        names = [LANGUAGE_NAMES[lang] for lang in self.languages]
        return {"scene": self.scene, "switch_frame": self.switch_frame,
                "halves": [{"language": names[k], "line": self.lines[k], "translation": self.lines[1 - k]}
                           for k in (0, 1)],
                "world": {"split": self.split, "index": self.index, "languages": list(self.languages),
                          "pause_s": [round(t, 4) for t in self.pause], "frames": len(self.clip.frames),
                          "fps": self.clip.spec.fps}}


def scene_text(clip: Clip) -> str:
    """What a talking clip shows, in the world's caption words and without its line (the dubbing prompts of
    datagen's ``dialogue_prompt`` add it): "A red ball bounces, a lamp blinks with a beep, while a man talks."."""
    colours = [colour_name(BALL_COLOURS[k % len(BALL_COLOURS)]) for k in range(clip.spec.n_balls)]
    parts = [p for p in (_balls(colours), "a lamp blinks with a beep" if clip.truth["beeps"] else "") if p]
    who = {"f": "a woman", "m": "a man"}[SPEAKERS[clip.spec.speaker][0][0]]
    text = ", ".join(parts) + f", while {who} talks" if parts else f"{who} talks"
    return text[0].upper() + text[1:] + "."


def fixed_gap() -> float:
    """The fixed rhythm's pause after a word, to the sample (join_words' own rounding of WORD_GAP_S)."""
    return int(WORD_GAP_S * ESPEAK_RATE) / ESPEAK_RATE


def _kept(words: list, start: float, latest_end: float) -> list:
    """The leading words that, said from ``start`` in the fixed rhythm, end by ``latest_end``."""
    kept, t = [], start
    for w in words:
        if t + w.seconds > latest_end:
            break
        kept.append(w)
        t += w.seconds + fixed_gap()
    return kept


def switch_clip(split: str, index: int, languages: tuple[str, str] = ("en", "fr"), *, seconds: float | None = None,
                half_frames: int | None = None, size: int, fps: int = 25, pause: float = PAUSE_S,
                sample_rate: int = 16000) -> SwitchClip:
    """Clip ``index`` of ``split`` with its sentence said in ``languages[0]``, a pause of at least ``pause``, then in
    ``languages[1]``. Language A starts where the plain clip's speech starts, in the world's fixed rhythm.

    - ``seconds``: that long, both lines whole and ``pause`` between them (a clip too short is refused);
    - ``seconds`` None, ``half_frames`` None: as long as the two whole lines need, in 8k + 1 frames;
    - ``half_frames``: two halves of that many frames (8k + 1, the length a base model was trained at) and 7 more
      frames (so the clip is 8k + 1 too); language B starts ``speech_start`` into the second half, as a plain clip's
      speech starts, and each half says the leading words of its line that fit (a base model's clips cut their
      line at the clip's end too); the switch is the second half's first frame.
    """
    a, b = languages
    if a == b or a not in LANGUAGE_NAMES or b not in LANGUAGE_NAMES:
        raise ValueError(f"languages: two different ones of {sorted(LANGUAGE_NAMES)}, got {languages}")
    spec = clip_spec(split, index, task="full", language=a, seconds=seconds or 1.0, size=size, fps=fps,
                     sample_rate=sample_rate)
    lines = (sentences.sentence(a, spec.sentence), sentences.sentence(b, spec.sentence))
    words = [synth_words(line, lang, spec.speaker) for line, lang in zip(lines, languages)]
    s0 = spec.speech_start
    if half_frames is not None:
        if (half_frames - 1) % 8:
            raise ValueError(f"half_frames must be 8k + 1 (the LTX-2 video VAE's rule), got {half_frames}")
        half, seconds = half_frames / fps, (2 * half_frames + 7) / fps
        words = [_kept(words[0], s0, half + s0 - pause), _kept(words[1], half + s0, seconds - END_MARGIN_S)]
        if not (words[0] and words[1]):
            raise ValueError(f"switch clip {split}/{index}: halves of {half_frames} frames hold no whole word of "
                             f"{'both lines' if not (words[0] or words[1]) else 'one line'} after a {pause:g} s pause")
        end_a = s0 + sum(w.seconds for w in words[0]) + fixed_gap() * (len(words[0]) - 1)
        between = half + s0 - end_a
        spec = replace(spec, seconds=seconds)
    else:
        between = pause
    gaps = [fixed_gap()] * (len(words[0]) - 1) + [between] + [fixed_gap()] * (len(words[1]) - 1)
    said = join_words(words[0] + words[1], sample_rate, start=s0, gaps=gaps)
    end = said.words[-1][2]
    if seconds is None:
        seconds = (int(np.ceil(((end + END_MARGIN_S) * fps - 1) / 8)) * 8 + 1) / fps
        spec = replace(spec, seconds=seconds)
    if end > seconds - END_MARGIN_S + 1e-9:
        raise ValueError(f"switch clip {split}/{index} ({a} then {b}): the two lines and the {pause:g} s pause need "
                         f"{end + END_MARGIN_S:.2f} s, the clip has {seconds:.2f} s")
    pause_span = (said.words[len(words[0]) - 1][2], said.words[len(words[0])][1])
    switch_frame = half_frames if half_frames is not None else int(round((pause_span[0] + pause_span[1]) / 2 * fps))
    clip = generate_clip(spec, spoken=(said, s0, " ".join(w for w, _, _ in said.words)))
    clip.truth["switch"] = {"languages": list(languages), "lines": list(lines),
                            "said": [[w.text for w in ws] for ws in words],
                            "pause_s": [round(t, 4) for t in pause_span], "switch_frame": switch_frame}
    return SwitchClip(clip, split, index, languages, lines, pause_span, switch_frame)


def write_switch_clip(sw: SwitchClip, folder: str | Path, name: str) -> Path:
    """``NAME.mp4`` + ``NAME.switch.json`` (written last: it marks a finished clip)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    video = folder / f"{name}.mp4"
    write_video(video, sw.clip.frames, sw.clip.spec.fps, sw.audio, sw.clip.spec.sample_rate)
    (folder / f"{name}.switch.json").write_text(json.dumps(sw.sidecar(), indent=1, ensure_ascii=False))
    return video


def write_switch_clips(folder: str | Path, split: str, count: int, *, seconds: float | None = None,
                       half_frames: int | None = None, size: int, fps: int = 25, pause: float = PAUSE_S,
                       start: int = 0) -> list[Path]:
    """Clips ``start .. start + count - 1`` of ``split`` (``switch_clip``'s lengths), languages in turn
    (LANGUAGE_ORDERS); a clip whose sidecar exists is kept."""
    written = []
    for i in range(start, start + count):
        name = f"{split}{i:05d}"
        video = Path(folder) / f"{name}.mp4"
        if not (video.is_file() and video.with_name(f"{name}.switch.json").is_file()):
            langs = LANGUAGE_ORDERS[i % len(LANGUAGE_ORDERS)]
            write_switch_clip(switch_clip(split, i, langs, seconds=seconds, half_frames=half_frames, size=size,
                                          fps=fps, pause=pause), folder, name)
        written.append(video)
    return written


def switch_spec(split: str, indices: list[int], *, languages: tuple[tuple[str, str], ...] = LANGUAGE_ORDERS) -> dict:
    """A ``dubbing-clips --spec`` of the world's lines (datagen_generate's format): one scene and one line pair
    per clip index, the languages in turn, so a base model samples the world's switch clips itself."""
    scenes, lines, clips = [], [], []
    for k, i in enumerate(indices):
        spec = clip_spec(split, i, task="full")
        a, b = languages[i % len(languages)]
        who = "She" if SPEAKERS[spec.speaker][0][0] == "f" else "He"
        colours = [colour_name(BALL_COLOURS[k % len(BALL_COLOURS)]) for k in range(spec.n_balls)]
        scenes.append({"scene": f"{_balls(colours)}, a lamp blinks with a beep.".capitalize(),
                       "speaker": who})
        lines.append({LANGUAGE_NAMES[lang]: sentences.sentence(lang, spec.sentence) for lang in (a, b)})
        clips.append({"name": f"{split}{i:05d}", "scene": k, "lines": k,
                      "languages": [LANGUAGE_NAMES[a], LANGUAGE_NAMES[b]], "seed": i})
    return {"style": "", "scenes": scenes, "lines": lines, "clips": clips}


def write_switch_spec(path: str | Path, split: str, indices: list[int]) -> Path:
    """``switch_spec`` as the JSON file ``dubbing-clips --spec`` reads."""
    path = Path(path)
    path.write_text(json.dumps(switch_spec(split, indices), indent=1, ensure_ascii=False))
    return path


__all__ = ["LANGUAGE_ORDERS", "PAUSE_S", "STEMS", "SwitchClip", "scene_text", "switch_clip", "switch_spec", "write_switch_clip",
           "write_switch_clips", "write_switch_spec"]
