"""Ovi training: flow matching of the twin DiTs with one shared timestep (paper 4.2.2), on the shared
accelerate trainer.

Each step draws one ``t ~ U[0, 1]`` per clip for both towers and independent noise per modality; the
noisy latents are Wan's ``(1 - sigma) x + sigma n`` (sigma = t, timestep = 1000 sigma, the sampler's
convention, models/ovi/sampler.py), each tower predicts the velocity ``n - x`` given the text and the other
tower, and the loss is ``0.85 L_video + 0.15 L_audio`` (paper 4.2.2). A share of the batches trains
image-to-video as Wan2.2-TI2V / Ovi's i2v runs it: the first latent frame is the clean image latent at
timestep 0 and is left out of the loss.

``python -m soundstage train ovi --data FOLDER --out OUT`` reads ``FOLDER/manifest.jsonl``: one JSON object per
clip naming a ``features`` safetensors file holding ``video`` [C, F, H, W] (the Wan VAE latent, normalised as
the VAE nodes give it), ``audio`` [L, C] (the MMAudio mel-VAE latent, as the Mel-VAE nodes take it) and
``text`` [Lt, D] (the umt5 encoder's output for the clip's prompt, cut to its tokens). ``--init`` fine-tunes
an Ovi ``model.safetensors``; ``--config`` starts a fresh model. The result is written in Ovi's key layout.
"""
from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from ...models.ovi.fusion import FusionConfig, OviFusion
from ...models.ovi.tower import TowerConfig
from ..features import manifest_items as read_manifest, write_features

NUM_TRAIN_TIMESTEPS = 1000  # Wan's training grid: the model's timestep is 1000 sigma
VIDEO_WEIGHT, AUDIO_WEIGHT = 0.85, 0.15  # paper 4.2.2: lambda_v, lambda_a


@dataclass
class OviBatch:
    video: torch.Tensor  # [B, C, F, H, W] clean video latents
    audio: torch.Tensor  # [B, L, C] clean audio latents
    text: torch.Tensor  # [B, Lt, D] text features, zero-padded (the model pads with zeros too)


@dataclass
class LossConfig:
    video_weight: float = VIDEO_WEIGHT
    audio_weight: float = AUDIO_WEIGHT
    i2v_share: float = 0.0  # share of batches trained as image-to-video (clean first latent frame)
    text_dropout: float = 0.0  # share of clips whose text is dropped (all-zero context: the empty prompt)


def noisy(x: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Wan's flow interpolation ``(1 - sigma) x + sigma noise`` (sigma 1 = pure noise)."""
    s = sigma.view(-1, *([1] * (x.dim() - 1))).to(x.dtype)
    return (1 - s) * x + s * noise


def make_loss_fn(cfg: LossConfig = LossConfig(), *, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)

    def loss_fn(model: OviFusion, batch: OviBatch):
        vid, aud, text = batch.video, batch.audio, batch.text
        b, dev = vid.shape[0], vid.device
        sigma = torch.rand(b, generator=gen).to(dev)  # one t for both towers (paper 4.2.2)
        nv = torch.randn(vid.shape, generator=gen).to(dev)
        na = torch.randn(aud.shape, generator=gen).to(dev)
        i2v = bool(torch.rand(1, generator=gen) < cfg.i2v_share) and vid.shape[2] > 1
        keep = (torch.rand(b, generator=gen) >= cfg.text_dropout).to(dev, text.dtype)
        text = text * keep.view(-1, 1, 1)
        xv, xa = noisy(vid, nv, sigma), noisy(aud, na, sigma)
        if i2v:
            xv[:, :, :1] = vid[:, :, :1]
        pv, pa = model(xv, xa, sigma * NUM_TRAIN_TIMESTEPS, text, text, first_frame_clean=i2v)
        ev = (pv.float() - (nv - vid)).pow(2)
        lv = (ev[:, :, 1:] if i2v else ev).mean()  # the given first frame is no prediction
        la = (pa.float() - (na - aud)).pow(2).mean()
        loss = cfg.video_weight * lv + cfg.audio_weight * la
        return loss, {"video": float(lv.detach()), "audio": float(la.detach()), "i2v": float(i2v)}

    return loss_fn


def collate(items: list[dict[str, torch.Tensor]]) -> OviBatch:
    """Clips of one latent size; texts zero-padded to the longest (zero is what the model pads with)."""
    shapes = {(tuple(it["video"].shape), tuple(it["audio"].shape)) for it in items}
    if len(shapes) > 1:
        raise ValueError(f"train ovi: a batch mixes latent sizes {sorted(shapes)}; give clips of one length and size")
    n = max(it["text"].shape[0] for it in items)
    text = torch.zeros(len(items), n, items[0]["text"].shape[1])
    for i, it in enumerate(items):
        text[i, : it["text"].shape[0]] = it["text"].float()
    return OviBatch(torch.stack([it["video"].float() for it in items]),
                    torch.stack([it["audio"].float() for it in items]), text)


def batches(items: list[dict], batch_size: int, seed: int = 0) -> Iterator[OviBatch]:
    rng = random.Random(seed)
    while True:
        order = list(range(len(items)))
        rng.shuffle(order)
        for i in range(0, len(order), batch_size):
            yield collate([items[j] for j in order[i: i + batch_size]])


def manifest_items(folder: str | Path) -> list[dict[str, torch.Tensor]]:
    return read_manifest(folder, ("video", "audio", "text"), "train ovi")


def fusion_config_from_dict(d: dict) -> FusionConfig:
    return FusionConfig(video=TowerConfig(**d["video"]), audio=TowerConfig(**d["audio"]))


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..features import add_train_arguments

    # paper 4.3: fusion fine-tuning at 5e-5
    add_train_arguments(p, model="Ovi fusion checkpoint (model.safetensors)",
                        config='tower configs: {"video": {...}, "audio": {...}}', steps=1000, batch_size=4, lr=5e-5)
    p.add_argument("--num-heads", type=int, default=None, help="with --init: heads (default dim / 128, as Wan)")
    p.add_argument("--video-weight", type=float, default=VIDEO_WEIGHT)
    p.add_argument("--audio-weight", type=float, default=AUDIO_WEIGHT)
    p.add_argument("--i2v-share", type=float, default=0.0, help="share of steps trained as image-to-video")
    p.add_argument("--text-dropout", type=float, default=0.0)

def train(net: OviFusion, data, cfg, loss: LossConfig = LossConfig(), *, ema_decay: float = 0.999):
    """Run the shared trainer; returns (trainer, ema)."""
    from ..audiogen_omni.train import EMA
    from ..trainer import Trainer

    ema = EMA(net, ema_decay)
    trainer = Trainer(net, make_loss_fn(loss, seed=cfg.seed), cfg,
                      on_step=lambda step, logs: ema.update(trainer.unwrapped()))
    trainer.fit(data)
    return trainer, ema


def main(args) -> int:
    from ...models.ovi.loader import load_ovi_fusion, save_ovi_fusion
    from ..trainer import TrainConfig

    if args.init:
        net = load_ovi_fusion(args.init, num_heads=args.num_heads).train().requires_grad_(True)
    elif args.config:
        net = OviFusion(fusion_config_from_dict(json.loads(Path(args.config).read_text())))
    else:
        raise SystemExit("train ovi: give --init CHECKPOINT or --config CONFIG.json")
    items = manifest_items(args.data)
    cfg = TrainConfig(out_dir=args.out, steps=args.steps, lr=args.lr, weight_decay=args.weight_decay,
                      betas=(0.9, 0.95), mixed_precision=args.mixed_precision, seed=args.seed)  # paper 4.3 betas
    loss = LossConfig(args.video_weight, args.audio_weight, args.i2v_share, args.text_dropout)
    trainer, ema = train(net, batches(items, args.batch_size, args.seed), cfg, loss, ema_decay=args.ema)
    out = save_ovi_fusion(ema.shadow, Path(args.out) / "ovi_fusion_ema.safetensors")
    print(json.dumps({"step": trainer.step, "checkpoint": str(out)}))
    return 0


__all__ = ["LossConfig", "OviBatch", "batches", "collate", "make_loss_fn", "manifest_items", "noisy", "train",
           "write_features"]
