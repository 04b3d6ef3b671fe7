"""DualDub curriculum training (paper 3.4): stage 1 V2A, stage 2 V2A + TTS, stage 3 V2ST, each
stage keeping the earlier stages' corpora. Entry point: ``python -m soundstage train dualdub``.

Built on the shared accelerate :class:`~..trainer.Trainer` (checkpoint/resume as
safetensors + JSON state under ``out_dir/checkpoint-<step>``). The finished stage is written as a
DualDub checkpoint ``out_dir/dualdub_stage<N>.safetensors`` with its BPE tokenizer beside it, and
the next stage starts from it with ``init_from``.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from ..trainer import Trainer, TrainConfig
from ...models.dualdub.config import DualDubConfig, V2A_PROMPT
from .data import IGNORE, Batches, Encoders, prepare_clip, read_manifest, stage_entries
from ...models.dualdub.io import load_dualdub, save_dualdub
from ...models.dualdub.model import DualDub, stream_loss
from ...models.dualdub.text import load_tokenizer, train_bpe

log = logging.getLogger("soundstage.train.dualdub")


def dualdub_loss(model: DualDub, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy of both heads; a stream absent from a sample's task has ignored targets."""
    speaker = model.speaker_encoder(batch["reference"], batch["reference_lengths"])
    # Paper 3.4: V2A uses a zero speaker embedding.
    speaker = speaker * batch["has_speaker"][:, None].to(speaker.dtype)
    cond = model.conditions(text_ids=batch["text_ids"], text_mask=batch["text_mask"], speaker=speaker,
                            video=batch["video"], video_times=batch["video_times"], video_mask=batch["video_mask"])
    logits_a, logits_s = model(cond, batch["audio_in"], batch["speech_in"], batch["stream_mask"])
    la = stream_loss(logits_a, batch["audio_tgt"], IGNORE)
    ls = stream_loss(logits_s, batch["speech_tgt"], IGNORE)
    return la + ls, {"loss_audio": float(la.detach()), "loss_speech": float(ls.detach())}


def _model_and_tokenizer(out: Path, entries: list[dict], init_from, model_config: dict | None, codebook_size: int,
                         token_rate: float, video_dim: int, vocab_size: int):
    """Resume > previous stage > fresh model (a fresh one trains its BPE tokenizer on the transcripts)."""
    cfg_file, tok_file = out / "dualdub_config.json", out / "tokenizer.json"
    if cfg_file.is_file() and tok_file.is_file():
        return DualDub(DualDubConfig.from_json(cfg_file.read_text())), load_tokenizer(tok_file)
    if init_from:
        model, tokenizer = load_dualdub(init_from)
        model.train()
    else:
        texts = [e["transcript"] for e in entries if e.get("transcript")] + [V2A_PROMPT]
        tokenizer = train_bpe(texts, vocab_size)
        overrides = dict(model_config or {})
        overrides.update(codebook_size=codebook_size, token_rate=token_rate, video_dim=video_dim,
                         text_vocab_size=tokenizer.get_vocab_size())
        model = DualDub(DualDubConfig(**overrides))
    out.mkdir(parents=True, exist_ok=True)
    cfg_file.write_text(model.config.to_json())
    tokenizer.save(str(tok_file))
    return model, tokenizer


def train(stage: int, data_dir: str | Path, out_dir: str | Path, steps: int, *, codec, clip=None,
          init_from: str | Path | None = None, model_config: dict | None = None, batch_size: int = 4,
          lr: float = 2e-4, vocab_size: int = 2000, seed: int = 0, save_every: int = 500,
          stop_at: int | None = None, resume: bool = True, schedule: str = "constant", warmup: int = 0,
          feature_cache: str | Path | None = None) -> dict:
    """Train one curriculum stage. ``codec`` is a WavTokenizer (or a path to its ``.ckpt``),
    ``clip`` a CLIPVisionModel (or path); both stay frozen. Media features are cached in ``feature_cache``
    (default ``out_dir/feature_cache``; the stages of one curriculum can share one: entries are keyed by the
    entry and the encoders). Returns history and checkpoint path."""
    from ...models.common.codecs.wavtokenizer import load_wavtokenizer
    from ...models.dualdub.vision import load_clip_vision

    data_dir, out = Path(data_dir), Path(out_dir)
    if isinstance(codec, (str, Path)):
        codec = load_wavtokenizer(codec)
    if isinstance(clip, (str, Path)):
        clip = load_clip_vision(clip)
    entries = stage_entries(read_manifest(data_dir), stage)
    if clip is None and any(e["task"] != "tts" for e in entries):
        raise ValueError(f"stage {stage} has video entries: a CLIP vision model is required")
    video_dim = clip.dim if clip is not None else (model_config or {}).get("video_dim", 1024)
    model, tokenizer = _model_and_tokenizer(out, entries, init_from, model_config, codec.codebook_size,
                                            codec.sample_rate / codec.hop_length, video_dim, vocab_size)
    cfg = model.config
    if cfg.codebook_size != codec.codebook_size:
        raise ValueError(f"codec has {codec.codebook_size} codes, the model {cfg.codebook_size}")
    enc = Encoders(codec=codec, clip=clip, tokenizer=tokenizer, frame_stride=cfg.frame_stride)
    fingerprint = enc.fingerprint()
    cache = Path(feature_cache) if feature_cache else out / "feature_cache"
    clips = [prepare_clip(e, data_dir, enc, cache, fingerprint) for e in entries]
    trainer = Trainer(model, dualdub_loss, TrainConfig(out_dir=str(out), steps=steps, lr=lr, seed=seed,
                                                        schedule=schedule, warmup_steps=warmup,
                                                        save_every=save_every, log_every=max(1, steps // 10),
                                                        extra={"stage": stage}))
    if resume:
        trainer.resume()
    history = trainer.fit(Batches(clips, cfg, batch_size, seed=seed, skip=trainer.step * trainer.cfg.grad_accum),
                          stop_at=stop_at)
    result = {"history": history, "step": trainer.step, "checkpoint": None}
    if trainer.step >= steps:
        path = save_dualdub(out / f"dualdub_stage{stage}.safetensors", trainer.unwrapped(), tokenizer)
        (out / f"dualdub_stage{stage}.json").write_text(json.dumps({"stage": stage, "steps": trainer.step}))
        result["checkpoint"] = path
    return result


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of ``soundstage train dualdub`` (the pack's CLI calls this, then :func:`main`)."""
    p.add_argument("--stage", type=int, required=True, choices=[1, 2, 3])
    p.add_argument("--data", required=True, help="folder with manifest.json")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=10000)
    p.add_argument("--codec", required=True, help="WavTokenizer .ckpt")
    p.add_argument("--clip", help="CLIP vision folder or file (needed when the stage has video)")
    p.add_argument("--init", help="previous stage's dualdub_stage<N>.safetensors")
    p.add_argument("--config", help="JSON file of DualDubConfig fields for a fresh model")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--schedule", default="constant", choices=["constant", "linear", "cosine"],
                   help="learning-rate schedule over the stage's steps (after --warmup)")
    p.add_argument("--warmup", type=int, default=0, help="linear warm-up steps")
    p.add_argument("--vocab-size", type=int, default=2000)
    p.add_argument("--save-every", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--feature-cache", help="folder of cached media features (default: OUT/feature_cache); give "
                                           "every stage the same one to encode each clip once")


def main(args: argparse.Namespace | list[str] | None = None) -> int:
    if not isinstance(args, argparse.Namespace):
        parser = argparse.ArgumentParser(prog="soundstage train dualdub", description=__doc__.splitlines()[0])
        add_arguments(parser)
        args = parser.parse_args(args)
    model_config = json.loads(Path(args.config).read_text()) if args.config else None
    result = train(args.stage, args.data, args.out, args.steps, codec=args.codec, clip=args.clip,
                   init_from=args.init, model_config=model_config, batch_size=args.batch_size, lr=args.lr,
                   vocab_size=args.vocab_size, seed=args.seed, save_every=args.save_every,
                   schedule=args.schedule, warmup=args.warmup, feature_cache=args.feature_cache)
    print(json.dumps({"step": result["step"], "checkpoint": str(result["checkpoint"])}))
    return 0
