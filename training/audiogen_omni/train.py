"""AudioGen-Omni training: conditional flow matching (paper 3.4.2) with modality dropout, variable-length
masks (paper 3.3) and an EMA of the weights (paper 4), on the shared accelerate trainer.

``python -m soundstage train audiogen --data FOLDER --out OUT`` reads ``FOLDER/manifest.jsonl``: one JSON
object per clip naming a ``features`` safetensors file (cached per clip, as MMAudio trains) holding
``latent`` [N, C] (VAE latents, un-normalised) and any of ``clip`` [Nc, Dc], ``sync`` [Ns, Ds],
``text`` [Nt, Dt] + ``text_mask`` [Nt], ``lyrics_ids`` [N]; plus optional ``start_s``. A folder with
only ``raw.jsonl`` (video, audio, caption, transcript or lyrics per line) is first turned into that
cache with ``--vae`` (+ ``--t5``, ``--clip``, ``--synchformer``); see :mod:`.prepare`.
"""
from __future__ import annotations

import argparse
import copy
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Optional

import torch

from ...models.common.flow_matching import flow_matching_loss, interpolate, sample_t
from ...models.audiogen_omni.mmdit import MMDiT, MMDiTConfig
from ..features import manifest_items as read_manifest

MODALITIES = ("clip", "sync", "text", "lyrics")


@dataclass
class DropoutConfig:
    """Probability of replacing each condition by its learned empty feature (paper 3.3: masking absent inputs)."""

    clip: float = 0.1
    sync: float = 0.1
    text: float = 0.1
    lyrics: float = 0.1

    def draw(self, batch: int, generator: torch.Generator, device) -> dict[str, torch.Tensor]:
        return {m: (torch.rand(batch, generator=generator) < getattr(self, m)).to(device) for m in MODALITIES}


class EMA:
    """Exponential moving average of the trainable weights (evaluated/saved instead of the raw ones)."""

    def __init__(self, model: torch.nn.Module, decay: float = 0.999):
        self.decay = decay
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for s, p in zip(self.shadow.parameters(), model.parameters()):
            if p.requires_grad:
                s.lerp_(p.detach().to(s.dtype), 1 - self.decay)


@dataclass
class Batch:
    latent: torch.Tensor  # [B, N, C] normalised target latents (x1)
    latent_mask: torch.Tensor  # [B, N]
    clip: Optional[torch.Tensor] = None
    sync: Optional[torch.Tensor] = None
    text: Optional[torch.Tensor] = None
    text_mask: Optional[torch.Tensor] = None
    lyrics_ids: Optional[torch.Tensor] = None
    start_s: torch.Tensor = field(default_factory=lambda: torch.zeros(1))
    duration_s: Optional[torch.Tensor] = None


def make_loss_fn(dropout: DropoutConfig = DropoutConfig(), *, seed: int = 0, t_distribution: str = "uniform"):
    gen = torch.Generator().manual_seed(seed)

    def loss_fn(model: MMDiT, batch: Batch):
        net = getattr(model, "module", model)
        x1 = batch.latent
        b, dev = x1.shape[0], x1.device
        x0 = torch.randn(x1.shape, generator=gen).to(dev)
        t = sample_t(b, generator=gen, distribution=t_distribution).to(dev)
        drop = dropout.draw(b, gen, dev)
        lyrics_f = lyrics_mask = None
        if batch.lyrics_ids is not None and net.config.lyrics_vocab:
            lyrics_f, lyrics_mask = net.encode_lyrics(batch.lyrics_ids)
        cond = net.encode_conditions(
            batch=b, latent_len=x1.shape[1], clip_f=batch.clip, sync_f=batch.sync, text_f=batch.text,
            text_mask=batch.text_mask, lyrics_f=lyrics_f, lyrics_mask=lyrics_mask, start_s=batch.start_s,
            duration_s=batch.duration_s, drop={k: v for k, v in drop.items() if k != "text" or batch.text is not None},
        )
        pred = net.predict_flow(interpolate(x0, x1, t), t, cond, batch.latent_mask)
        # Paper 3.3: padded frames are excluded from the loss.
        loss = flow_matching_loss(pred.float(), x0, x1, batch.latent_mask)
        return loss, {"t_mean": float(t.mean())}

    return loss_fn


def collate(items: list[dict[str, torch.Tensor]], net: MMDiT) -> Batch:
    """Pad clips of different lengths to the longest; the latent mask marks the real frames."""
    n = max(it["latent"].shape[0] for it in items)
    rate = net.config.latent_rate
    lat = torch.zeros(len(items), n, net.config.latent_dim)
    mask = torch.zeros(len(items), n, dtype=torch.bool)
    for i, it in enumerate(items):
        k = it["latent"].shape[0]
        lat[i, :k] = net.normalize(it["latent"].float().unsqueeze(0))[0].detach()
        mask[i, :k] = True

    def stack(key, length=None):
        if not all(key in it for it in items):
            return None
        xs = [it[key] for it in items]
        size = length or max(x.shape[0] for x in xs)
        out = torch.zeros(len(xs), size, *xs[0].shape[1:], dtype=xs[0].dtype)
        for i, x in enumerate(xs):
            out[i, : min(size, x.shape[0])] = x[:size]
        return out

    sync = stack("sync")
    if sync is not None and sync.shape[1] % 8:
        sync = sync[:, : sync.shape[1] // 8 * 8]
    return Batch(
        latent=lat, latent_mask=mask, clip=stack("clip"), sync=sync, text=stack("text"),
        text_mask=None if stack("text_mask") is None else stack("text_mask").bool(), lyrics_ids=stack("lyrics_ids", n),
        start_s=torch.tensor([float(it["start_s"]) if "start_s" in it else 0.0 for it in items]),
        duration_s=torch.tensor([it["latent"].shape[0] / rate for it in items]),
    )


def manifest_items(folder: str | Path) -> list[dict[str, torch.Tensor]]:
    return read_manifest(folder, ("latent",), "train audiogen")


def batches(items: list, net: MMDiT, batch_size: int, seed: int = 0) -> Iterator[Batch]:
    rng = random.Random(seed)
    while True:
        order = list(range(len(items)))
        rng.shuffle(order)
        for i in range(0, len(order), batch_size):
            yield collate([items[j] for j in order[i : i + batch_size]], net)


def train(net: MMDiT, data: Iterable[Batch], cfg, *, dropout: DropoutConfig = DropoutConfig(), ema_decay: float = 0.999):
    """Run the shared trainer; returns (trainer, ema)."""
    from ..trainer import Trainer

    ema = EMA(net, ema_decay)
    trainer = Trainer(net, make_loss_fn(dropout, seed=cfg.seed), cfg,
                      on_step=lambda step, logs: ema.update(trainer.unwrapped()))
    trainer.fit(data)
    return trainer, ema


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..features import add_train_arguments

    # paper 4: lr 1e-5, weight decay 1e-3
    add_train_arguments(p, model="MMDiT checkpoint (MMAudio .pth or ours)", config="MMDiTConfig fields",
                        steps=10000, batch_size=8, lr=1e-5, weight_decay=1e-3)
    p.add_argument("--vae", help="MMAudio VAE file, to cache features of a raw.jsonl folder")
    p.add_argument("--t5", help="T5 folder (captions)")
    p.add_argument("--clip", help="open_clip weights (video frames)")
    p.add_argument("--clip-arch", default="metaclip_bigg14", help="dfn5b_h14_384 or metaclip_bigg14")
    p.add_argument("--synchformer", help="synchformer_state_dict.pth (video sync features)")
    p.add_argument("--tokenizer", help="VoiceBPE tokenizer.json for transcripts/lyrics (default: UTF-8 symbols)")


def prepare_from_args(args) -> None:
    from ...models.common.checkpoint import load_file
    from ...models.common.codecs.mel import LogMel, mel_config_for
    from ...models.common.codecs.mmaudio_vae import load_mel_vae
    from ...models.audiogen_omni.lyrics import LyricsTokenizer
    from .prepare import FeatureExtractors, prepare_folder
    from ...models.audiogen_omni.synchformer import load_synchformer
    from ...models.audiogen_omni.text import T5TextEncoder
    from ...models.audiogen_omni.visual import load_clip_encoder

    if not args.vae:
        raise SystemExit("train audiogen: the data folder has raw.jsonl but no manifest.jsonl; give --vae to cache features")
    vae = load_mel_vae(load_file(args.vae))
    ex = FeatureExtractors(
        vae=vae, mel=LogMel(mel_config_for(vae.config.mel_bins)),
        t5=T5TextEncoder.from_folder(args.t5) if args.t5 else None,
        clip=load_clip_encoder(args.clip_arch, args.clip) if args.clip else None,
        synchformer=load_synchformer(load_file(args.synchformer)) if args.synchformer else None,
        tokenizer=LyricsTokenizer(args.tokenizer),
    )
    prepare_folder(args.data, ex)


def main(args) -> int:
    from ..trainer import TrainConfig
    from ...models.audiogen_omni.loader import load_mmdit, save_mmdit

    if args.init:
        net, _ = load_mmdit(args.init)
        net.train()
    elif args.config:
        net = MMDiT(MMDiTConfig.from_dict(json.loads(Path(args.config).read_text())))
    else:
        raise SystemExit("train audiogen: give --init CHECKPOINT or --config CONFIG.json")
    cfg = TrainConfig(out_dir=args.out, steps=args.steps, lr=args.lr, weight_decay=args.weight_decay,
                      mixed_precision=args.mixed_precision, seed=args.seed)
    if not (Path(args.data) / "manifest.jsonl").exists() and (Path(args.data) / "raw.jsonl").exists():
        prepare_from_args(args)
    items = manifest_items(args.data)
    trainer, ema = train(net, batches(items, net, args.batch_size, args.seed), cfg, ema_decay=args.ema)
    out = Path(args.out) / "audiogen_omni_ema.safetensors"
    save_mmdit(ema.shadow, out)
    print(json.dumps({"step": trainer.step, "checkpoint": str(out)}))
    return 0
