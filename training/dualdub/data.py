"""Training data for the DualDub curriculum: a folder manifest, per-clip feature caching, batching.

``manifest.json`` in the data folder is a JSON list; each entry names files relative to the folder:
``{"video": ..., "background": ..., "speech": ..., "transcript": "...", "reference": ..., "task": ...}``.
Fields a corpus lacks are left out. ``task`` defaults to the most complete one the entry supports:
V2ST (everything), TTS (speech + transcript [+ reference]) or V2A (video + background).
"""
from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...models.dualdub.config import STAGE_TASKS, V2A_PROMPT

IGNORE = -100


# ---------------------------------------------------------------------------------- media
def read_audio(path: str | Path, sample_rate: int) -> torch.Tensor:
    """Any audio (or video-with-audio) file -> mono float32 [N] at ``sample_rate``."""
    import av

    chunks = []
    with av.open(str(path)) as container:
        stream = next((s for s in container.streams if s.type == "audio"), None)
        if stream is None:
            raise ValueError(f"{Path(path).name}: no audio stream")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        for frame in container.decode(stream):
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return torch.from_numpy(np.concatenate(chunks) if chunks else np.zeros(0, np.float32)).float()


def read_video(path: str | Path) -> tuple[torch.Tensor, float]:
    """Video file -> (frames [T, H, W, 3] float 0..1, frames per second)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    if not frames:
        raise ValueError(f"{Path(path).name}: no video frames")
    return torch.from_numpy(np.stack(frames)).float() / 255.0, fps


# ---------------------------------------------------------------------------------- manifest
def entry_task(entry: dict) -> str:
    if "task" in entry:
        return entry["task"]
    has = {k for k, v in entry.items() if v}
    if {"video", "background", "speech", "transcript"} <= has:
        return "v2st"
    if {"speech", "transcript"} <= has:
        return "tts"
    if {"video", "background"} <= has:
        return "v2a"
    raise ValueError(f"manifest entry supports no task: {sorted(has)}")


def read_manifest(data_dir: str | Path) -> list[dict]:
    data_dir = Path(data_dir)
    path = data_dir / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"no manifest.json in {data_dir}")
    entries = json.loads(path.read_text())
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a JSON list of entries")
    return entries


def stage_entries(entries: list[dict], stage: int) -> list[dict]:
    """The corpora a curriculum stage trains on: its new task plus every earlier stage's."""
    if stage not in STAGE_TASKS:
        raise ValueError(f"stage must be 1, 2 or 3, not {stage}")
    chosen = [dict(e, task=entry_task(e)) for e in entries if entry_task(e) in STAGE_TASKS[stage]]
    if not chosen:
        raise ValueError(f"no manifest entry fits stage {stage} (tasks {STAGE_TASKS[stage]})")
    return chosen


# ---------------------------------------------------------------------------------- features
@dataclass
class Encoders:
    """The frozen parts used to turn media into training features."""

    codec: object          # WavTokenizer
    clip: object | None    # CLIPVisionModel (None when no entry has video)
    tokenizer: object      # tokenizers.Tokenizer
    frame_stride: int = 3

    def fingerprint(self) -> str:
        """Changes when any encoder changes, so cached features are never reused across encoders."""
        parts = [json.dumps(self.codec.config.to_dict(), sort_keys=True), self.tokenizer.to_str(),
                 str(self.frame_stride)]
        if self.clip is not None:
            parts.append(self.clip.model.config.to_json_string())
            parts.append(str(float(sum(p.detach().double().sum() for p in self.clip.parameters()))))
        parts.append(str(float(sum(p.detach().double().sum() for p in self.codec.parameters()))))
        return hashlib.sha1("\n".join(parts).encode()).hexdigest()


def _codes(codec, wav: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return codec.encode(wav[None])[1][0, 0]


def prepare_clip(entry: dict, data_dir: Path, enc: Encoders, cache_dir: Path | None,
                 fingerprint: str = "") -> dict[str, torch.Tensor]:
    """Media -> tensors for one manifest entry, cached as safetensors keyed by the entry and encoders."""
    from safetensors.torch import load_file, save_file

    from ...models.dualdub.vision import encode_video

    key = hashlib.sha1((json.dumps(entry, sort_keys=True) + fingerprint).encode()).hexdigest()[:16]
    cached = cache_dir / f"{key}.safetensors" if cache_dir else None
    if cached is not None and cached.is_file():
        return load_file(str(cached))
    task = entry["task"]
    sr = enc.codec.sample_rate
    out: dict[str, torch.Tensor] = {}
    text = V2A_PROMPT if task == "v2a" else entry["transcript"]
    out["text_ids"] = torch.tensor(enc.tokenizer.encode(text).ids or [0], dtype=torch.long)
    if task in ("v2a", "v2st"):
        frames, fps = read_video(data_dir / entry["video"])
        out["video"], out["video_times"] = encode_video(enc.clip, frames, fps, stride=enc.frame_stride)
        out["audio_codes"] = _codes(enc.codec, read_audio(data_dir / entry["background"], sr))
    if task in ("tts", "v2st"):
        out["speech_codes"] = _codes(enc.codec, read_audio(data_dir / entry["speech"], sr))
        # Paper 3.2 crops the reference from the target speech itself; a separate voice file may be given.
        ref = entry.get("reference") or entry["speech"]
        out["reference"] = read_audio(data_dir / ref, sr)
    if task == "v2st":
        # Both tracks cover the same video: keep them the same length.
        n = min(len(out["audio_codes"]), len(out["speech_codes"]))
        out["audio_codes"], out["speech_codes"] = out["audio_codes"][:n], out["speech_codes"][:n]
    out = {k: v.contiguous() for k, v in out.items()}
    if cached is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        save_file(out, str(cached))
    return out


# ---------------------------------------------------------------------------------- batches
def _stream(codes: torch.Tensor | None, length: int, bos: int, eos: int, pad: int):
    """-> (inputs [BOS, c...], targets [c..., EOS]) padded to ``length``; absent stream: PAD / ignored."""
    inp = torch.full((length,), pad, dtype=torch.long)
    tgt = torch.full((length,), IGNORE, dtype=torch.long)
    if codes is not None:
        n = len(codes)
        inp[0], inp[1:n + 1] = bos, codes
        tgt[:n], tgt[n] = codes, eos
    return inp, tgt


def collate(clips: list[dict[str, torch.Tensor]], cfg, *, speaker_seconds: float, sample_rate: int,
            rng: random.Random) -> dict:
    """Clip tensors -> one padded batch (text/video/stream masks, loss targets, speaker crops)."""
    from ...models.dualdub.speaker import reference_crop

    b = len(clips)
    lt = max(len(c["text_ids"]) for c in clips)
    tv = max(len(c["video"]) if "video" in c else 1 for c in clips)
    ls = max(max(len(c.get("audio_codes", ())), len(c.get("speech_codes", ()))) for c in clips) + 1
    batch = {
        "text_ids": torch.zeros(b, lt, dtype=torch.long), "text_mask": torch.zeros(b, lt, dtype=torch.bool),
        "video": torch.zeros(b, tv, cfg.video_dim), "video_times": torch.zeros(b, tv),
        "video_mask": torch.zeros(b, tv, dtype=torch.bool),
        "audio_in": torch.empty(b, ls, dtype=torch.long), "audio_tgt": torch.empty(b, ls, dtype=torch.long),
        "speech_in": torch.empty(b, ls, dtype=torch.long), "speech_tgt": torch.empty(b, ls, dtype=torch.long),
        "stream_mask": torch.zeros(b, ls, dtype=torch.bool), "has_speaker": torch.zeros(b, dtype=torch.bool),
    }
    refs = []
    for i, c in enumerate(clips):
        n = len(c["text_ids"])
        batch["text_ids"][i, :n], batch["text_mask"][i, :n] = c["text_ids"], True
        if "video" in c:
            m = len(c["video"])
            batch["video"][i, :m], batch["video_times"][i, :m], batch["video_mask"][i, :m] = \
                c["video"], c["video_times"], True
        else:
            batch["video_mask"][i, 0] = True  # TTS: one all-zero video vector (paper 3.4)
        for name in ("audio", "speech"):
            batch[f"{name}_in"][i], batch[f"{name}_tgt"][i] = _stream(
                c.get(f"{name}_codes"), ls, cfg.bos_id, cfg.eos_id, cfg.pad_id)
        n_stream = max(len(c.get("audio_codes", ())), len(c.get("speech_codes", ()))) + 1
        batch["stream_mask"][i, :n_stream] = True
        if "reference" in c:
            seed = rng.randrange(2 ** 31)
            refs.append(reference_crop(c["reference"], sample_rate, speaker_seconds,
                                       generator=torch.Generator().manual_seed(seed), random=True))
            batch["has_speaker"][i] = True
        else:
            refs.append(torch.zeros(sample_rate // 10))
    width = max(len(r) for r in refs)
    batch["reference"] = torch.stack([torch.nn.functional.pad(r, (0, width - len(r))) for r in refs])
    batch["reference_lengths"] = torch.tensor([len(r) for r in refs])
    return batch


class Batches:
    """Reshuffled each pass; reference crops are redrawn every time a clip is used. The first ``skip`` batches are
    drawn without being built, so a run resumed at step n trains on the batches an uninterrupted run trains on
    from step n: the same order and the same reference crops."""

    def __init__(self, clips: list[dict], cfg, batch_size: int, *, seed: int = 0, skip: int = 0):
        self.clips, self.cfg, self.batch_size = clips, cfg, batch_size
        self.rng = random.Random(seed)
        self.skip = skip

    def _draw_crops(self, clips: list[dict]) -> None:
        """What ``collate`` draws from the generator for these clips (one seed per reference crop)."""
        for c in clips:
            if "reference" in c:
                self.rng.randrange(2 ** 31)

    def __iter__(self):
        while True:
            order = list(range(len(self.clips)))
            self.rng.shuffle(order)
            chunks = [[self.clips[j] for j in order[i:i + self.batch_size]]
                      for i in range(0, len(order), self.batch_size)]
            built = False
            for chunk in chunks:
                if self.skip:  # already trained on before the resume
                    self.skip -= 1
                    self._draw_crops(chunk)
                    continue
                built = True
                yield collate(chunk, self.cfg, speaker_seconds=self.cfg.speaker_seconds,
                              sample_rate=self.cfg.codec_sample_rate, rng=self.rng)
            if built or not chunks:  # a pass skipped whole goes on to the next: the trainer needs batches
                return
