"""Caching training features per clip (MMAudio trains on pre-extracted features the same way).

A raw manifest line ``{"audio": "a.wav", "video": "a.mp4", "caption": "...", "transcript": "..."}``
(``video``, ``caption`` and ``transcript``/``lyrics`` optional; ``audio`` may be omitted when the video
has sound) becomes ``features/<stem>.safetensors`` with ``latent`` (VAE mean, un-normalised),
``clip``, ``sync``, ``text`` + ``text_mask`` and ``lyrics_ids`` as :mod:`.train` reads them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from ...models.audiogen_omni.lyrics import LyricsTokenizer
from ...models.audiogen_omni.text import T5TextEncoder
from ...models.audiogen_omni.visual import ClipFrameEncoder, extract_visual_features
from ...models.audiogen_omni.synchformer import Synchformer


@dataclass
class FeatureExtractors:
    vae: torch.nn.Module  # models.common.codecs.mmaudio_vae.MelVAE
    mel: torch.nn.Module  # models.common.codecs.mel.LogMel matching the VAE
    t5: Optional[T5TextEncoder] = None
    clip: Optional[ClipFrameEncoder] = None
    synchformer: Optional[Synchformer] = None
    tokenizer: Optional[LyricsTokenizer] = None
    max_seconds: float = 10.0  # paper 4: 10 s clips


@torch.no_grad()
def clip_features(entry: dict, folder: Path, ex: FeatureExtractors) -> dict[str, torch.Tensor]:
    from ...media.audio_io import load_audio
    from ...media.decode import decode_video
    from ...models.common.codecs.mel import prepare_waveform

    cfg = ex.mel.config
    src = folder / (entry.get("audio") or entry["video"])
    wave, rate = load_audio(src, duration=ex.max_seconds)
    x = prepare_waveform(wave.unsqueeze(0), rate, cfg, multiple=2)
    mean, _ = ex.vae.encode(ex.mel(x))
    out: dict[str, torch.Tensor] = {"latent": mean[0].transpose(0, 1).float().contiguous()}
    seconds = x.shape[-1] / cfg.sample_rate
    if entry.get("video") and (ex.clip is not None or ex.synchformer is not None):
        video = decode_video(folder / entry["video"], duration=seconds)
        feats = extract_visual_features(video.frames, video.fps, clip_encoder=ex.clip, synchformer=ex.synchformer,
                                        duration_s=seconds)
        if feats.clip is not None:
            out["clip"] = feats.clip[0].contiguous()
        if feats.sync is not None:
            out["sync"] = feats.sync[0].contiguous()
    if entry.get("caption") and ex.t5 is not None:
        t = ex.t5.encode([entry["caption"]])
        out["text"], out["text_mask"] = t.features[0].cpu().contiguous(), t.mask[0].cpu().to(torch.uint8).contiguous()
    words = entry.get("transcript") or entry.get("lyrics")
    if words:
        tok = ex.tokenizer or LyricsTokenizer()
        ids = tok.encode(words, entry.get("language"))[: out["latent"].shape[0]]
        out["lyrics_ids"] = torch.tensor(ids, dtype=torch.long)
    if "start_s" in entry:
        out["start_s"] = torch.tensor(float(entry["start_s"]))
    return out


def prepare_folder(folder: str | Path, ex: FeatureExtractors, *, raw_name: str = "raw.jsonl") -> Path:
    """``raw.jsonl`` -> ``features/*.safetensors`` + ``manifest.jsonl`` (what ``train audiogen`` reads)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    (folder / "features").mkdir(exist_ok=True)
    lines = []
    for i, line in enumerate((folder / raw_name).read_text().splitlines()):
        if not line.strip():
            continue
        entry = json.loads(line)
        name = f"{i:06d}_{Path(entry.get('audio') or entry['video']).stem}.safetensors"
        save_file(clip_features(entry, folder, ex), str(folder / "features" / name))
        lines.append(json.dumps({"features": f"features/{name}"}))
    manifest = folder / "manifest.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest
