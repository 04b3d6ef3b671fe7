"""MTV training loss: v-prediction on CogVideoX's zero-SNR DDPM schedule (the sampler's, models/mtv/sampler.py),
the three audio streams through the MST-ControlNet, on the shared accelerate trainer.

Each step draws one timestep per clip and the noisy latents ``sqrt(a) x + sqrt(1 - a) n`` (``a`` the schedule's
alphas_cumprod, zero at the last step); the model predicts ``v = sqrt(a) n - sqrt(1 - a) x``. Shares of the
batches train what the sampler also asks for:

- the unconditional pass of classifier-free guidance: zeroed audio features and zeroed text for a clip (the
  sampler's unconditional input, sampler.py);
- image-to-video: the first frame's latent in the image channels, zeros elsewhere (CogVideoX-I2V; the sampler's
  keyframe input);
- a continued chunk (paper sec. 5.5): the first CARRIED_LATENTS latents clean, modulated as clean frames
  (``clean_frames``), and left out of the loss, as every chunk after the first is sampled.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterator

import torch

from ...models.mtv.sampler import CARRIED_LATENTS, make_scheduler

STREAMS = ("vocal", "effect", "music")


@dataclass
class MTVBatch:
    latents: torch.Tensor  # [B, T, C, h, w] clean, scaled video latents (the VAE's encode_frames)
    image: torch.Tensor  # [B, 1, C, h, w] the first frame's latent, encoded alone (the keyframe input)
    context: torch.Tensor  # [B, Lt, D] text features (fitted to the model's text length)
    vocal: torch.Tensor  # [B, F, 5, layers, D] wav2vec windows per stream, F = 1 + 4 (T - 1)
    effect: torch.Tensor
    music: torch.Tensor


@dataclass(frozen=True)
class LossConfig:
    uncond_share: float = 0.1
    i2v_share: float = 0.5
    continue_share: float = 0.25


def make_loss_fn(cfg: LossConfig = LossConfig(), *, seed: int = 0):
    alphas = make_scheduler().alphas_cumprod.float()
    gen = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)

    def loss_fn(model, batch: MTVBatch):
        net = getattr(model, "module", model)
        x = batch.latents
        b = x.shape[0]
        t = torch.randint(0, len(alphas), (b,), generator=gen)
        a = alphas[t].view(b, 1, 1, 1, 1)
        noise = torch.randn(x.shape, generator=gen)
        noisy = a.sqrt() * x + (1 - a).sqrt() * noise
        target = a.sqrt() * noise - (1 - a).sqrt() * x
        k = CARRIED_LATENTS if rng.random() < cfg.continue_share else 0
        if k:
            noisy = torch.cat([x[:, :k], noisy[:, k:]], dim=1)
        keep_image = (torch.rand(b, generator=gen) < cfg.i2v_share).float().view(b, 1, 1, 1, 1)
        image = torch.zeros_like(x)
        image[:, :1] = batch.image * keep_image
        cond = (torch.rand(b, generator=gen) >= cfg.uncond_share).float()
        feats = {s: getattr(batch, s) * cond.view(b, 1, 1, 1, 1) for s in STREAMS}
        context = batch.context * cond.view(b, 1, 1)
        tokens = net.audio.project(feats["vocal"], feats["effect"], feats["music"])
        pred = model(noisy, context, t, tokens, image_latents=image, clean_frames=k)
        loss = (pred.float() - target)[:, k:].pow(2).mean()
        return loss, {"continued": float(k > 0), "i2v": float(keep_image.mean()), "uncond": float(1 - cond.mean())}

    return loss_fn


def batches(items: list[dict[str, torch.Tensor]], batch_size: int, seed: int = 0) -> Iterator[MTVBatch]:
    """Random clips without replacement within a batch; ``items``: dicts with MTVBatch's fields per clip."""
    rng = random.Random(seed)
    while True:
        pick = rng.sample(range(len(items)), min(batch_size, len(items)))
        yield MTVBatch(**{f: torch.stack([items[i][f] for i in pick]) for f in MTVBatch.__dataclass_fields__})


__all__ = ["LossConfig", "MTVBatch", "batches", "make_loss_fn"]
