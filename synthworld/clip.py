"""One synthetic clip: its frames, stems and exact ground truth."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import render, scene, sentences, song, sounds
from .captions import caption, colour_name
from .speech import LINES, SPEAKERS, join_words, speak, synth_words, varied_timing
from .visemes import openness_track

BALL_COLOURS = [(220, 50, 50), (60, 200, 90), (240, 160, 30)]
SPEECH_TIMINGS = ("fixed", "varied")
VOICES = ("speak", "sing")


@dataclass(frozen=True)
class ClipSpec:
    seed: int = 0
    seconds: float = 3.0
    fps: int = 25
    width: int = 128
    height: int = 128
    sample_rate: int = 16000
    language: str = "en"
    speaker: str = "spk0"
    line: int = 0
    sentence: int = -1  # >= 0: the grammar's sentence of this id (sentences.py) instead of LINES[line]
    speech_start: float = 0.3
    n_balls: int = 1
    speech: bool = True
    profile_views: bool = True
    head_motion: bool = True
    # Random event starts (balls held still 0-1 s, first blink at 0.2-1.6 s, from their own generator so the
    # rest of the clip is unchanged): with every clip starting its events alike, another clip's sound is
    # nearly in sync and a model can learn the world's timing instead of reading it from the video.
    event_delays: bool = False
    # "fixed": speech starts at ``speech_start`` and every word is followed by the same pause (speech.WORD_GAP_S),
    # so the timing is a function of the text and the speaker. "varied": the start (0.2-1.2 s) and each pause
    # between words (0.04-0.35 s) are drawn per clip from their own generator (speech.varied_timing; the rest
    # of the clip is unchanged), so the speech's timing is seen on the lips and not in the transcript.
    speech_timing: str = "fixed"
    # "sing": the sentence is sung, a word on each beat, to the clip's tune (song.py: drawn from its own generator
    # (seed, 3) and named in the caption), over the tune's chords instead of the drawn music (the room's light
    # follows that music's mood); the balls, the lamp and their sounds are drawn as when it speaks.
    voice: str = "speak"


@dataclass
class Clip:
    spec: ClipSpec
    frames: np.ndarray  # [N, H, W, 3] uint8
    stems: dict[str, np.ndarray]  # speech / effects / music, float32 mono
    truth: dict = field(default_factory=dict)

    @property
    def mix(self) -> np.ndarray:
        m = self.stems["speech"] + self.stems["effects"] + self.stems["music"]
        peak = float(np.abs(m).max()) if m.size else 0.0
        return (m / peak * 0.9 if peak > 0.98 else m).astype(np.float32)


def _spoken(spec: ClipSpec, transcript: str):
    """The clip's speech and its start time, in the spec's timing (a song keeps its own: a word on each beat)."""
    if spec.voice == "sing":
        return song.sing(transcript, spec.language, spec.speaker, spec.sample_rate, song.draw_tune(spec.seed))
    if spec.speech_timing == "fixed":
        start = spec.speech_start
        return speak(transcript, spec.language, spec.speaker, spec.sample_rate, start=start), start
    words = synth_words(transcript, spec.language, spec.speaker)
    start, gaps = varied_timing(np.random.default_rng([spec.seed, 2]), [w.seconds for w in words], spec.seconds)
    return join_words(words, spec.sample_rate, start=start, gaps=gaps), start


def speech_track(spec: ClipSpec, *, spoken: tuple | None = None) -> tuple[np.ndarray, list, list, str]:
    """The clip's speech stem, word and phoneme times and transcript, exactly as ``generate_clip`` draws them,
    without rendering a frame (a speech-only corpus, e.g. DualDub's TTS stage, costs espeak-ng alone)."""
    speech = np.zeros(int(round(spec.seconds * spec.sample_rate)), np.float32)
    if not spec.speech:
        return speech, [], [], ""
    if spoken is None:
        transcript = sentences.sentence(spec.language, spec.sentence) if spec.sentence >= 0 \
            else LINES[spec.language][spec.line % len(LINES[spec.language])]
        said, start = _spoken(spec, transcript)
    else:
        said, start, transcript = spoken
    sounds.place(speech, 0.8 * said.wave / max(1e-6, float(np.abs(said.wave).max())), start, spec.sample_rate)
    words = [(w, round(a, 4), round(b, 4)) for w, a, b in said.words if a < spec.seconds]
    phonemes = [(p, round(a, 4), round(b, 4)) for p, a, b in said.phonemes if a < spec.seconds]
    return speech, words, phonemes, transcript


def generate_clip(spec: ClipSpec, *, spoken: tuple | None = None) -> Clip:
    """Deterministic for a given spec. Speech needs espeak-ng; ``speech=False`` does not.

    ``spoken``: (Speech, start s, transcript) said instead of the spec's own line (``switch.py``'s
    language-switch clips); everything else of the clip is drawn exactly as without it."""
    if spec.language not in LINES:
        raise ValueError(f"language must be one of {sorted(LINES)}, got {spec.language!r}")
    if spec.speaker not in SPEAKERS:
        raise ValueError(f"speaker must be one of {sorted(SPEAKERS)}, got {spec.speaker!r}")
    if spec.speech_timing not in SPEECH_TIMINGS:
        raise ValueError(f"speech_timing must be one of {SPEECH_TIMINGS}, got {spec.speech_timing!r}")
    if spec.voice not in VOICES or (spec.voice == "sing" and spec.speech_timing != "fixed"):
        raise ValueError(f"voice must be one of {VOICES} (a song has its own timing: speech_timing 'fixed'), "
                         f"got voice {spec.voice!r} with speech_timing {spec.speech_timing!r}")
    rng = np.random.default_rng(spec.seed)
    n = int(round(spec.seconds * spec.fps))
    n_samples = int(round(spec.seconds * spec.sample_rate))
    times = np.arange(n) / spec.fps

    # speech and the mouth that follows it
    speech, words, phonemes, transcript = speech_track(spec, spoken=spoken)
    openness = openness_track(phonemes, n, spec.fps)

    # balls, their impacts; the light and its beeps
    effects = np.zeros(n_samples, np.float32)
    ball_states, impacts = [], []
    delays = np.random.default_rng([spec.seed, 1]) if spec.event_delays else None
    holds = delays.uniform(0.0, 1.0, spec.n_balls) if delays else np.zeros(spec.n_balls)
    for k in range(spec.n_balls):
        ball = scene.Ball(x0=0.55 + 0.3 * rng.random(), vx=rng.uniform(-0.15, 0.15), drop_height=rng.uniform(0.45, 0.7),
                          radius=0.05 + 0.02 * rng.random(), colour=BALL_COLOURS[k % len(BALL_COLOURS)],
                          hold=float(holds[k]))
        heights, xs, contacts = scene.ball_track(ball, times)
        ball_states.append((heights, xs, ball))
        for c in contacts:
            sounds.place(effects, sounds.impact(spec.sample_rate, rng, ball.radius * 20), c, spec.sample_rate)
            impacts.append({"time": round(c, 4), "frame": int(round(c * spec.fps)), "ball": k})
    blinks = scene.blink_times(rng, spec.seconds, first=float(delays.uniform(0.2, 1.6)) if delays else None)
    for b in blinks:
        sounds.place(effects, sounds.beep(spec.sample_rate), b, spec.sample_rate)

    music_spec = scene.make_music(rng)  # drawn for a song too, so the rest of the clip is drawn alike
    tune = song.draw_tune(spec.seed) if spec.voice == "sing" and transcript else None
    if tune:
        music_spec = song.accompaniment(tune, spec.speaker, spec.seconds)
    music, beats = sounds.music_track(music_spec, spec.seconds, spec.sample_rate)
    bar = 4 * 60.0 / music_spec.bpm
    dx, dy, profile = scene.head_pose(times, rng, spec.seconds)
    profile &= spec.profile_views
    if not spec.head_motion:
        dx, dy = dx * 0, dy * 0

    canvas = render.Canvas(spec.height, spec.width)
    frames = np.empty((n, spec.height, spec.width, 3), np.uint8)
    for i, t in enumerate(times):
        mood = music_spec.mood[min(int(t // bar), len(music_spec.mood) - 1)]
        light = any(b <= t < b + 0.2 for b in blinks)
        balls = [(xs[i], heights[i], ball.radius, ball.colour) for heights, xs, ball in ball_states]
        frames[i] = render.draw_frame(canvas, mood=mood, openness=openness[i], head_dx=float(dx[i]), head_dy=float(dy[i]),
                                      profile=bool(profile[i]), balls=balls, light_on=light)

    truth = {
        "transcript": transcript,
        "words": words,
        "phonemes": phonemes,
        "mouth_openness": [round(o, 3) for o in openness],
        "profile_frames": [int(i) for i in np.flatnonzero(profile)],
        "impacts": impacts,
        "beeps": [{"time": b, "frame": int(round(b * spec.fps))} for b in blinks],
        "beats": beats,
        "mood_per_bar": music_spec.mood[: int(np.ceil(spec.seconds / bar))],
        "speaker": spec.speaker,
        "language": spec.language,
    }
    if tune:
        truth["tune"] = tune
        truth["notes"] = song.notes(words, tune, spec.speaker)
    truth["caption"] = caption(
        ball_colours=[colour_name(ball.colour) for _, _, ball in ball_states], beeps=len(blinks),
        speaker_gender=SPEAKERS[spec.speaker][0][0] if transcript else None, transcript=transcript,
        language=spec.language, mood=float(np.mean(truth["mood_per_bar"])) if truth["mood_per_bar"] else None,
        tune=tune)
    return Clip(spec, frames, {"speech": speech, "effects": effects, "music": music}, truth)


def _write_wav(path: Path, wave: np.ndarray, rate: int) -> None:
    import torch

    from ..media.save_audio import save_audio

    save_audio(path, torch.from_numpy(np.ascontiguousarray(wave, np.float32))[None], rate, "wav_float")


def write_video(path: Path, frames: np.ndarray, fps: int, audio: np.ndarray | None, rate: int) -> None:
    """H.264 + AAC mp4 (or video only), through the media library's muxer."""
    import torch

    from ..media.mux import AudioTrack, mux

    tracks = [] if audio is None else [AudioTrack(torch.from_numpy(audio.astype(np.float32))[None], rate, "Mix", default=True)]
    mux(path, list(frames), fps, tracks, preset="veryfast", frame_count=len(frames))


def write_clip(clip: Clip, folder: str | Path, name: str) -> dict:
    """Write the clip's files into ``folder`` and return its manifest entry (paths relative to it)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    spec, rate = clip.spec, clip.spec.sample_rate
    files = {
        "video": f"{name}.mp4",
        "silent_video": f"{name}_silent.mp4",
        "mix": f"{name}_mix.wav",
        "speech": f"{name}_speech.wav",
        "effects": f"{name}_effects.wav",
        "music": f"{name}_music.wav",
        "background": f"{name}_background.wav",
    }
    write_video(folder / files["video"], clip.frames, spec.fps, clip.mix, rate)
    write_video(folder / files["silent_video"], clip.frames, spec.fps, None, rate)
    _write_wav(folder / files["mix"], clip.mix, rate)
    for stem in ("speech", "effects", "music"):
        _write_wav(folder / files[stem], clip.stems[stem], rate)
    _write_wav(folder / files["background"], clip.stems["effects"] + clip.stems["music"], rate)
    entry = {"id": name, **files, "spec": asdict(spec), "fps": spec.fps, "sample_rate": rate,
             "seconds": spec.seconds, **clip.truth}
    (folder / f"{name}.json").write_text(json.dumps(entry, indent=1))
    return entry
