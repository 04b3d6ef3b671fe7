"""JUST-DUB-IT tiny default, stages 6-8: the dubbing data and the LoRA, made with the pack's own tools from the base
model (stages 1-5, ``just_dub_it.py``) and the world, as the paper makes them (3.2, 3.3, A.1, A.3):

6. language-switch clips: the world's train clips with the sentence said in one language, a pause, then in another
   (``synthworld.switch``), written as ``NAME.mp4`` + ``NAME.switch.json`` (the folder ``dubbing-data`` reads);
7. dubbing pairs: ``dubbing-data``'s two inpainting passes on the base model (``datagen_folder.build_dataset``;
   the lips found by their drawn colour, as for the world's folders);
8. the dubbing LoRA: ``train dubbing-lora`` (``training/just_dub_it/train.py``) on those pairs at a tiny rank.

Each stage resumes by key (stages.py): its own settings and the keys of what it reads, so a changed base model
remakes the pairs and the LoRA, and nothing else. The recipe calls ``train_dubbing`` after the base model's stages
(with ``dub_scale``: the halves, size and prompt length of the base).
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from .stages import curve_entry, finished, record

LORA_FILE = "just_dub_it_lora.safetensors"  # the LoRA as the Dubbing LoRA Loader reads it (folder loras/)


@dataclass(frozen=True)
class DubScale:
    """Sizes of stages 6-8 and of the dubbing the evaluation runs."""

    switch_clips: int  # train-split clips: two pairs each (each half is once the target)
    datagen_steps: int  # Euler steps of each inpainting pass
    lora_steps: int
    lora_rank: int = 8
    size: int = 64  # frame side (px): a multiple of 32 (the LTX-2 VAE's 32x); the base model's
    fps: int = 25  # one of LTX-2's rates; the base model's
    pause: float = 0.5  # at least this between the languages (synthworld.switch.PAUSE_S)
    # switch clips of two halves this long (synthworld.switch.switch_clip): the base model's clip length, so that
    # each pair's half is a clip like those it was trained on; None: each clip as long as its two whole lines need
    half_frames: int | None = 49
    datagen_cfg: float = 1.0  # the tiny base has no negative prompt worth guiding away from
    # effective latent mask threshold: the paper's 0.1 (A.1) is for LTX-2's VAE; the tiny VAE moves its latents less
    # (measured on the feasibility base: |E(lips) - E(black)| at most 0.067, so 0.1 masked nothing and dropped 15 of
    # 16 pairs)
    tau: float = 0.02
    max_tokens: int = 64  # Gemma prompt length (the base's connectors are built for it)
    video_lr: float = 1e-3  # the paper's 2e-4 / 1e-5 (A.3) are for a 19B base at rank 128; a tiny rank learns faster
    audio_lr: float = 1e-4
    dub_steps: int = 16  # the evaluation's dubbing: Euler steps and CFG of the Dubbing Sampler
    dub_cfg: float = 1.0
    start: int = 0  # first train index of the switch clips


DUB_SCALES = {
    "smoke": DubScale(switch_clips=1, datagen_steps=2, lora_steps=2, lora_rank=2, half_frames=25, dub_steps=2,
                      max_tokens=16),
    "feasibility": DubScale(switch_clips=16, datagen_steps=8, lora_steps=300),
    "full": DubScale(switch_clips=64, datagen_steps=16, lora_steps=2000),
}


def dub_scale(name: str, base) -> DubScale:
    """Stages 6-8 at scale ``name`` fitted to the base model's recipe scale ``base`` (its ``size``, ``frames`` and
    ``max_tokens``: the pairs' halves and the prompts are what the base was trained on). Halves are at least the
    dub scale's own: the smoke base's 9 frames hold no word."""
    sc = DUB_SCALES[name]
    return replace(sc, size=base.size, half_frames=max(base.frames, sc.half_frames or 0), max_tokens=base.max_tokens)


def train_dubbing(out: Path, sc: DubScale, seed: int, stages: list, weights: Path, files: dict) -> dict:
    """Stages 6-8 after the base model: ``files`` names the base's files in ``weights`` ("model", "text_encoder");
    the base's key is the last stage's (the DiT's). Returns the report's part (the LoRA's file and the pairs)."""
    base_key = stages[-1].get("key", {}) if stages else {}
    clips, clips_key = switch_clips(out, sc, stages)
    pairs, pairs_key = dubbing_pairs(out, clips, clips_key, weights / files["model"], weights / files["text_encoder"],
                                     base_key, sc, seed, stages)
    lora, _ = dubbing_lora(out, pairs, pairs_key, weights / files["model"], sc, seed, stages, weights)
    return {"dub_scale": asdict(sc), "lora": lora.name, "pairs": len(list(pairs.glob("*.safetensors")))}


def switch_clips(out: Path, sc: DubScale, stages: list, *, resume: bool = True) -> tuple[Path, dict]:
    """Stage 6: ``sc.switch_clips`` world switch clips into ``out/switch_clips``. Returns (folder, key)."""
    from ...synthworld.switch import LANGUAGE_ORDERS, write_switch_clips

    name, folder = "switch_clips", out / "switch_clips"
    key = {"split": "train", "start": sc.start, "count": sc.switch_clips, "size": sc.size, "fps": sc.fps,
           "pause": sc.pause, "half_frames": sc.half_frames, "orders": [list(o) for o in LANGUAGE_ORDERS]}
    if finished(out, name, stages, resume, key):
        return folder, key
    if folder.exists():  # clips of another key would be taken as kept
        shutil.rmtree(folder)
    start = time.time()
    written = write_switch_clips(folder, "train", sc.switch_clips, half_frames=sc.half_frames, size=sc.size,
                                 fps=sc.fps, pause=sc.pause, start=sc.start)
    record(out, name, stages, {"stage": name, "clips": len(written), "wall_s": round(time.time() - start, 1),
                               "key": key})
    return folder, key


def dubbing_pairs(out: Path, clips: Path, clips_key: dict, base_ckpt: Path, text_encoder: Path, base_key: dict,
                  sc: DubScale, seed: int, stages: list, *, resume: bool = True) -> tuple[Path, dict]:
    """Stage 7: ``dubbing-data`` on the switch clips with the base model (two inpainting passes per half, the
    lips by their drawn colour). Returns (pairs folder, key)."""
    import torch

    from ..just_dub_it.datagen_folder import build_dataset, load_datagen_models, synthworld_lip_masks
    from ..just_dub_it.datagen_pairs import DatagenConfig

    name, folder = "pairs", out / "pairs"
    cfg = DatagenConfig(steps=sc.datagen_steps, cfg=sc.datagen_cfg, tau=sc.tau, seed=seed)
    key = {"clips": clips_key, "base": base_key, "datagen": asdict(cfg), "max_tokens": sc.max_tokens}
    if finished(out, name, stages, resume, key):
        return folder, key
    if folder.exists():
        shutil.rmtree(folder)
    start, cpu = time.time(), time.process_time()
    models = load_datagen_models(base_ckpt, text_encoder, max_tokens=sc.max_tokens, dtype=torch.float32)
    logs: list[str] = []
    written = build_dataset(clips, folder, models, cfg, lip_mask_fn=synthworld_lip_masks, log=logs.append)
    index = json.loads((folder / "index.json").read_text())["pairs"]
    record(out, name, stages, {"stage": name, "pairs": len(written), "skipped": sum("skipped" in s for s in logs),
                               "targets": sorted({p["target_language"] for p in index}),
                               "wall_s": round(time.time() - start, 1), "cpu_s": round(time.process_time() - cpu, 1),
                               "key": key})
    return folder, key


def dubbing_lora(out: Path, pairs: Path, pairs_key: dict, base_ckpt: Path, sc: DubScale, seed: int, stages: list,
                 weights: Path, *, resume: bool = True) -> tuple[Path, dict]:
    """Stage 8: ``train dubbing-lora`` on the pairs (paper 3.3 / A.3: in-context flow matching, modality isolation,
    the 10:1 masked video loss) at ``sc.lora_rank``; the LoRA is copied to ``weights/LORA_FILE``. Returns (path, key)."""
    from ..just_dub_it.train import DubbingLoraConfig, train

    name, run = "dubbing_lora", out / "dubbing_lora"
    cfg = DubbingLoraConfig(rank=sc.lora_rank, video_lr=sc.video_lr, audio_lr=sc.audio_lr,
                            gradient_checkpointing=False)
    key = {"pairs": pairs_key, "lora": asdict(cfg), "steps": sc.lora_steps, "fps": sc.fps, "seed": seed}
    lora = run / "dubbing_lora.safetensors"
    if not (lora.is_file() and finished(out, name, stages, resume, key)):
        if run.exists():  # the trainer resumes from its checkpoints: never from another key's
            shutil.rmtree(run)
        start, cpu = time.time(), time.process_time()
        result = train(str(base_ckpt), str(pairs), str(run), steps=sc.lora_steps, cfg=cfg, fps=float(sc.fps),
                       mixed_precision="no", save_every=10**9, seed=seed)
        history = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()] \
            if (run / "log.jsonl").is_file() else []
        entry = curve_entry(name, result["step"], time.time() - start, time.process_time() - cpu, history)
        record(out, name, stages, entry | {"key": key})
    weights.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(lora, weights / LORA_FILE)
    return weights / LORA_FILE, key


__all__ = ["DUB_SCALES", "DubScale", "LORA_FILE", "dub_scale", "dubbing_lora", "dubbing_pairs", "switch_clips",
           "train_dubbing"]
