"""Language-switching clips from the base LTX-2 model: step 1 of the paired-data pipeline (paper 3.2, A.1).

    python -m soundstage dubbing-clips --spec spec.json --ckpt ltx-2-19b-dev.safetensors \\
        --text-encoder gemma-3-12b/ --out clips/
    python -m soundstage dubbing-data --clips clips/ --ckpt ltx-2-19b-dev.safetensors \\
        --text-encoder gemma-3-12b/ --out pairs/

The paper has Gemini write 100 structured prompts over seven languages; here a JSON spec lists the
scenes and the lines, and the timed A.1 prompt is written from it (:func:`plan_clips`)::

    {"style": "Hyper-realistic 8k, sharp focus, neutral lighting.",      (optional; this is the default)
     "scenes": [{"scene": "Shot in a rainy alleyway at midnight. Eleanor, a detective.",
                 "speaker": "She",                                       (optional)
                 "actions": ["Eleanor looks at the camera.", "She takes a deep breath.",
                             "She lights a cigarette."]}],               (optional: during A, the pause, B)
     "lines": [{"French": "Il est trop tard.", "English": "It is too late."}],
     "clips": [...]}                                                     (optional)

Languages are the paper's seven, by name or ISO code. Without ``clips`` each line pair makes one clip
(scenes taken in turn): the pair's first language before the pause, its second after, each half
saying the pair's sentence (so the other half's line is its translation). A ``clips`` entry chooses
instead, ``{"name", "scene": index, "lines": i or [i, j], "languages": ["French", "English"], "seed"}``
(``[i, j]``: half A says line i, half B line j, two sentences as in the paper's example), or gives a
user-written prompt verbatim: ``{"name", "prompt", "scene", "halves": [{"language", "line",
"translation"}, {...}], "switch_seconds" (optional), "seed"}``.

Each clip is sampled text-to-audio+video in one stage (Gemma -> connectors -> Euler/CFG over every
video and audio token, no context tokens), decoded by the video VAE, audio VAE and vocoder, and
written as ``NAME.mp4`` (H.264 + AAC) with the ``NAME.switch.json`` sidecar :mod:`.datagen_folder`
reads; clips already written are kept, so an interrupted run resumes.
"""
from __future__ import annotations

import json
import math
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ...models.just_dub_it.av_codec import decode_audio, decode_video, fit_waveform
from .datagen import PAUSE_SECONDS, SwitchTiming, language_switch_prompt
from .datagen_folder import LANGUAGE_NAMES, PRECISIONS, load_datagen_models
from .datagen_pairs import DatagenConfig, DatagenModels, SwitchHalf, half_slices, inpaint
from ...models.just_dub_it.in_context import VIDEO_SCALE_FACTORS
from ...models.just_dub_it.schedule import (
    DEFAULT_CFG,
    DEFAULT_STEPS,
    VIDEO_FPS_CHOICES,
    audio_latent_frames,
    check_resolution,
    latent_frames,
)

PAPER_STYLE = "Hyper-realistic 8k, sharp focus, neutral lighting."  # paper A.1's example prompt opens so
CLIP_SECONDS = 10.0  # paper A.1's example clip: [00:00–00:10]
CLIP_SIZE = (512, 768)  # height, width: JUST-DUB-IT's stage-1 resolution (paper 4)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class SpecError(ValueError):
    """A clip spec that cannot be turned into prompts; the message names the entry and the field."""


@dataclass
class ClipPlan:
    """One clip to generate: its prompt and what its sidecar says."""

    name: str
    prompt: str
    scene: str
    halves: tuple[SwitchHalf, SwitchHalf]
    switch_frame: int | None  # first frame of the second language; None = the middle
    seed: int

    def sidecar(self, frames: int, fps: float) -> dict[str, Any]:
        return {"scene": self.scene, "switch_frame": self.switch_frame,
                "halves": [{"language": h.language, "line": h.line, "translation": h.translation} for h in self.halves],
                "prompt": self.prompt, "seed": self.seed, "frames": frames, "fps": fps}


@dataclass
class ClipConfig:
    seconds: float = CLIP_SECONDS
    fps: float = 25.0
    width: int = CLIP_SIZE[1]
    height: int = CLIP_SIZE[0]
    steps: int = DEFAULT_STEPS
    cfg: float = DEFAULT_CFG
    negative_prompt: str = ""
    pause: float = PAUSE_SECONDS
    seed: int = 0

    @property
    def frames(self) -> int:
        return clip_frames(self.seconds, self.fps)


def clip_frames(seconds: float, fps: float) -> int:
    """The ``8k + 1`` frame count nearest ``seconds`` at ``fps`` (the causal video VAE's rule)."""
    if fps not in VIDEO_FPS_CHOICES:
        raise ValueError(f"fps must be one of {VIDEO_FPS_CHOICES} (LTX-2), got {fps:g}")
    frames = math.floor((seconds * fps - 1) / 8 + 0.5) * 8 + 1  # nearest; a tie takes the longer clip
    if frames < 25:  # two halves of at least 9 frames around the switch
        raise ValueError(f"a {seconds:g} s clip at {fps:g} fps is too short to switch language (need >= 25 frames)")
    return frames


# ---- the spec ---------------------------------------------------------------------------------

def language_name(value: Any, where: str) -> str:
    """One of the paper's seven languages (A.1), by name or ISO code, as its English name."""
    names = {n.lower(): n for n in LANGUAGE_NAMES.values()} | {c: n for c, n in LANGUAGE_NAMES.items()}
    name = names.get(str(value).strip().lower()) if isinstance(value, str) else None
    if name is None:
        raise SpecError(f"{where}: unknown language {value!r}; the paper's seven are "
                        f"{', '.join(LANGUAGE_NAMES.values())} (or {', '.join(LANGUAGE_NAMES)})")
    return name


def _text(entry: dict, key: str, where: str, *, required: bool = True) -> str:
    value = entry.get(key, "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise SpecError(f"{where}: missing {key!r} (a non-empty string)")
    return value.strip()


def _line_pairs(spec: dict) -> list[dict[str, str]]:
    pairs = []
    for i, entry in enumerate(spec.get("lines") or []):
        where = f"lines[{i}]"
        if not isinstance(entry, dict) or len(entry) < 2:
            raise SpecError(f"{where}: give the same sentence in two languages, e.g. {{\"English\": ..., \"French\": ...}}")
        pair = {}
        for lang, line in entry.items():
            name = language_name(lang, where)
            if not isinstance(line, str) or not line.strip():
                raise SpecError(f"{where}: missing line for {name}")
            pair[name] = line.strip()
        pairs.append(pair)
    return pairs


def _scenes(spec: dict, style: str) -> list[dict[str, Any]]:
    scenes = []
    for i, entry in enumerate(spec.get("scenes") or []):
        where = f"scenes[{i}]"
        if isinstance(entry, str):
            entry = {"scene": entry}
        if not isinstance(entry, dict):
            raise SpecError(f"{where}: a scene is a string or {{\"scene\", \"speaker\", \"actions\"}}")
        actions = entry.get("actions") or []
        if not isinstance(actions, list) or len(actions) > 3 or not all(isinstance(a, str) for a in actions):
            raise SpecError(f"{where}: 'actions' lists up to three strings (first language, pause, second language)")
        scenes.append({"scene": f"{style} {_text(entry, 'scene', where)}".strip(),
                       "speaker": _text(entry, "speaker", where, required=False) or "The speaker",
                       "actions": tuple(actions) + ("",) * (3 - len(actions))})
    return scenes


def _pick(items: list, index: Any, what: str, where: str):
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(items):
        raise SpecError(f"{where}: {what} must be an index below {len(items)}, got {index!r}")
    return items[index]


def _generated_plan(scene: dict, first: dict[str, str], second: dict[str, str], languages: tuple[str, str],
                    timing: SwitchTiming, fps: float, name: str, seed: int, where: str) -> ClipPlan:
    a, b = languages
    for pair in (first, second):
        for lang in (a, b):
            if lang not in pair:
                raise SpecError(f"{where}: missing line: no {lang} sentence in {pair}")
    prompt = language_switch_prompt(scene["scene"], a, first[a], b, second[b], timing=timing, speaker=scene["speaker"],
                                    actions=scene["actions"])
    halves = (SwitchHalf(a, first[a], first[b]), SwitchHalf(b, second[b], second[a]))
    return ClipPlan(name, prompt, scene["scene"], halves, timing.switch_frame(fps), seed)


def _verbatim_plan(entry: dict, fps: float, name: str, seed: int, where: str) -> ClipPlan:
    halves = entry.get("halves")
    if not isinstance(halves, list) or len(halves) != 2 or not all(isinstance(h, dict) for h in halves):
        raise SpecError(f"{where}: a verbatim prompt needs two 'halves' of {{\"language\", \"line\", \"translation\"}}")
    parsed = tuple(SwitchHalf(language_name(h.get("language"), f"{where}.halves[{i}]"),
                              _text(h, "line", f"{where}.halves[{i}]"), _text(h, "translation", f"{where}.halves[{i}]"))
                   for i, h in enumerate(halves))
    switch = entry.get("switch_seconds")
    if switch is not None and (isinstance(switch, bool) or not isinstance(switch, (int, float))):
        raise SpecError(f"{where}: 'switch_seconds' must be a number")
    return ClipPlan(name, _text(entry, "prompt", where), _text(entry, "scene", where, required=False), parsed,
                    None if switch is None else int(switch * fps + 0.5), seed)


def plan_clips(spec: dict, *, seconds: float = CLIP_SECONDS, fps: float = 25.0, pause: float = PAUSE_SECONDS,
               seed: int = 0) -> list[ClipPlan]:
    """The clips a spec describes (module docstring), with their prompts timed for the clip length:
    ``seconds`` rounded to ``8k + 1`` frames at ``fps``, a ``pause``-second SILENT PAUSE in the middle."""
    if not isinstance(spec, dict):
        raise SpecError("the spec is a JSON object with 'scenes' and 'lines' (and optionally 'clips')")
    frames = clip_frames(seconds, fps)
    timing = SwitchTiming.for_duration(frames / fps, pause)
    style = spec.get("style", PAPER_STYLE)
    if not isinstance(style, str):
        raise SpecError("'style' must be a string")
    scenes, pairs = _scenes(spec, style.strip()), _line_pairs(spec)
    entries = spec.get("clips")
    if entries is None:
        if not scenes or not pairs:
            raise SpecError("the spec needs 'scenes' and 'lines' (or 'clips' with verbatim prompts)")
        entries = [{"scene": i % len(scenes), "lines": i} for i in range(len(pairs))]
    if not isinstance(entries, list) or not entries:
        raise SpecError("'clips' must be a non-empty list")
    plans = []
    for i, entry in enumerate(entries):
        where = f"clips[{i}]" if "clips" in spec else f"lines[{i}]"
        if not isinstance(entry, dict):
            raise SpecError(f"{where}: a clip is an object")
        name = entry.get("name", f"clip{i:04d}")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise SpecError(f"{where}: name {name!r} must be a plain file name (letters, digits, _ . -)")
        clip_seed = entry.get("seed", seed + i)
        if isinstance(clip_seed, bool) or not isinstance(clip_seed, int):
            raise SpecError(f"{where}: 'seed' must be an integer")
        if "prompt" in entry:
            plan = _verbatim_plan(entry, fps, name, clip_seed, where)
        else:
            scene = _pick(scenes, entry.get("scene", i % max(1, len(scenes))), "'scene'", where)
            lines = entry.get("lines", i)
            lines = [lines, lines] if not isinstance(lines, list) else lines
            if len(lines) not in (1, 2):
                raise SpecError(f"{where}: 'lines' is one index, or two (half A's line, half B's line)")
            first, second = (_pick(pairs, j, "'lines'", where) for j in (lines[0], lines[-1]))
            languages = entry.get("languages") or list(first)[:2]
            if not isinstance(languages, list) or len(languages) != 2:
                raise SpecError(f"{where}: 'languages' names two languages, the first spoken first")
            a, b = (language_name(lang, where) for lang in languages)
            if a == b:
                raise SpecError(f"{where}: the two halves must be in different languages, got {a} twice")
            plan = _generated_plan(scene, first, second, (a, b), timing, fps, name, clip_seed, where)
        if plan.switch_frame is not None:
            try:
                half_slices(frames, plan.switch_frame)
            except ValueError as exc:
                raise SpecError(f"{where}: {exc}") from None
        plans.append(plan)
    names = [p.name for p in plans]
    if len(set(names)) != len(names):
        raise SpecError(f"clip names must be unique: {sorted({n for n in names if names.count(n) > 1})} repeat")
    return plans


def load_spec(path: str | Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SpecError(f"spec file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise SpecError(f"{Path(path).name} is not valid JSON: {exc}") from None


# ---- generation -------------------------------------------------------------------------------

@torch.no_grad()
def generate_clip(models: DatagenModels, plan: ClipPlan, cfg: ClipConfig,
                  callback: Callable[[int, int], None] | None = None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Text-to-audio+video with the base model: (frames [F, H, W, 3] 0..1, waveform [C, N], rate).

    Every video and audio token is noised, so the inpainting sampler is plain stage-1 t2av here
    (unrestricted cross-modal attention, ltx_core's schedule, Euler and CFG).
    """
    check_resolution(cfg.height, cfg.width)
    frames = cfg.frames
    _, sh, sw = VIDEO_SCALE_FACTORS
    vae, audio_vae = models.video_vae, models.audio_vae
    video = torch.zeros(1, vae.config.latent_channels, latent_frames(frames), cfg.height // sh, cfg.width // sw)
    # diffusers' LTX-2 pipeline sizes the audio latent the same way: duration x 25 latents/s, mel bins / 4.
    audio = torch.zeros(1, audio_vae.config.latent_channels, audio_latent_frames(frames / cfg.fps),
                        audio_vae.config.mel_bins // audio_vae.mel_compression_ratio)
    everything = torch.ones(video.shape[2:], dtype=torch.bool)
    sampling = DatagenConfig(steps=cfg.steps, cfg=cfg.cfg, negative_prompt=cfg.negative_prompt)
    v, a = inpaint(models, video, audio, everything, torch.ones(audio.shape[2], dtype=torch.bool), cfg.fps,
                   plan.prompt, sampling, seed=plan.seed, callback=callback)
    pixels = decode_video(vae, v).cpu()
    wav, rate = decode_audio(audio_vae, models.vocoder, a)
    return pixels, fit_waveform(wav.float().cpu(), rate, frames / cfg.fps), rate


def write_clip(folder: str | Path, plan: ClipPlan, frames: torch.Tensor, waveform: torch.Tensor, rate: int,
               fps: float) -> Path:
    """``NAME.mp4`` + ``NAME.switch.json``; the sidecar is written last, so it marks a finished clip."""
    from ...media.mux import AudioTrack, mux

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    video = folder / f"{plan.name}.mp4"
    mux(video, frames, fps, [AudioTrack(waveform.clamp(-1, 1), rate)])
    sidecar = folder / f"{plan.name}.switch.json"
    sidecar.write_text(json.dumps(plan.sidecar(int(frames.shape[0]), fps), indent=1, ensure_ascii=False))
    return video


def generate_clips(models: DatagenModels, plans: list[ClipPlan], out_dir: str | Path, cfg: ClipConfig | None = None, *,
                   limit: int = 0, overwrite: bool = False, callback: Callable[[int, int], None] | None = None,
                   log: Callable[[str], None] = print) -> list[Path]:
    """Generate and write every planned clip (the first ``limit`` when > 0); ``callback(step, total)``
    counts sampling steps over all of them. Clips whose sidecar exists are kept unless ``overwrite``."""
    cfg = cfg or ClipConfig()
    plans = plans[:limit] if limit else plans
    out = Path(out_dir)
    total = len(plans) * cfg.steps
    written = []
    for i, plan in enumerate(plans):
        video = out / f"{plan.name}.mp4"
        if not overwrite and video.is_file() and video.with_suffix(".switch.json").is_file():
            log(f"{video.name}: exists, kept")
            written.append(video)
            continue
        start = time.perf_counter()
        step_cb = None if callback is None else (lambda done, _n, offset=i * cfg.steps: callback(offset + done, total))
        frames, wav, rate = generate_clip(models, plan, cfg, step_cb)
        written.append(write_clip(out, plan, frames, wav, rate, cfg.fps))
        log(f"{video.name}: {frames.shape[0]} frames, switch at {plan.switch_frame}, "
            f"{plan.halves[0].language} -> {plan.halves[1].language}, {time.perf_counter() - start:.1f} s")
    return written


# ---- command line -----------------------------------------------------------------------------

def add_arguments(p) -> None:
    p.add_argument("--spec", required=True, help="JSON spec of scenes and line pairs (or verbatim prompts)")
    p.add_argument("--ckpt", help="LTX-2 single file (transformer, connectors, VAEs, vocoder)")
    p.add_argument("--text-encoder", help="Gemma-3 folder (Hugging Face layout) or single file")
    p.add_argument("--out", required=True, help="folder for NAME.mp4 + NAME.switch.json")
    p.add_argument("--seconds", type=float, default=CLIP_SECONDS, help="clip length, rounded to 8k+1 frames")
    p.add_argument("--fps", type=float, default=25.0, choices=VIDEO_FPS_CHOICES)
    p.add_argument("--pause", type=float, default=PAUSE_SECONDS, help="SILENT PAUSE between the languages (s)")
    p.add_argument("--width", type=int, default=CLIP_SIZE[1])
    p.add_argument("--height", type=int, default=CLIP_SIZE[0])
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    p.add_argument("--cfg", type=float, default=DEFAULT_CFG)
    p.add_argument("--negative-prompt", default="")
    p.add_argument("--max-tokens", type=int, default=1024, help="Gemma prompt length (1024 for the release)")
    p.add_argument("--seed", type=int, default=0, help="clip i uses seed + i unless its spec entry sets one")
    p.add_argument("--limit", type=int, default=0, help="at most this many clips (0 = all)")
    p.add_argument("--overwrite", action="store_true", help="regenerate clips already in --out")
    p.add_argument("--dry-run", action="store_true", help="print the prompts and sidecars, load no model")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", choices=sorted(PRECISIONS), default="bf16", help="weights and activations")


def main(args) -> int:
    cfg = ClipConfig(seconds=args.seconds, fps=args.fps, width=args.width, height=args.height, steps=args.steps,
                     cfg=args.cfg, negative_prompt=args.negative_prompt, pause=args.pause, seed=args.seed)
    try:
        check_resolution(cfg.height, cfg.width)
        plans = plan_clips(load_spec(args.spec), seconds=cfg.seconds, fps=cfg.fps, pause=cfg.pause, seed=cfg.seed)
    except ValueError as exc:  # a bad spec or size: say what to fix, before any model is loaded
        print(f"dubbing-clips: {exc}", file=sys.stderr)
        return 1
    plans = plans[: args.limit] if args.limit else plans
    if args.dry_run:
        for plan in plans:
            print(json.dumps({"name": plan.name, **plan.sidecar(cfg.frames, cfg.fps)}, ensure_ascii=False))
        return 0
    if not args.ckpt or not args.text_encoder:
        raise SystemExit("dubbing-clips: --ckpt and --text-encoder are required (or --dry-run)")
    models = load_datagen_models(args.ckpt, args.text_encoder, max_tokens=args.max_tokens, device=args.device,
                                 dtype=PRECISIONS[args.precision])
    written = generate_clips(models, plans, args.out, cfg, overwrite=args.overwrite)
    print(json.dumps({"clips": len(written), "out": str(args.out), "frames": cfg.frames, "fps": cfg.fps}))
    return 0
