"""Training the tiny Synchformer so that its tokens carry timing, on a cheap proxy of its own objective.

Synchformer learns audio-visual synchrony contrastively on millions of clips; on a 2-core CPU the tiny
encoder instead learns to predict, from each of its tokens (one per 2-frame tubelet), how near that
tubelet is to a sound event of the clip (a Gaussian bump of ENVELOPE_S around every ball contact and
lamp blink). The head is thrown away and the encoder frozen, so the MMDiT sees released-layout
Synchformer features that locate contacts in time (with random frozen weights they barely do).
"""
from __future__ import annotations

import random
from typing import Iterator

import numpy as np
import torch
from torch import nn

from ...models.audiogen_omni.preprocess import SYNC_FPS, SYNC_SEGMENT, SYNC_STRIDE, load_video_frames, sync_pixels
from ...models.audiogen_omni.synchformer import Synchformer

ENVELOPE_S = 0.04  # one 25 fps frame: the sync tolerance
POS_WEIGHT = 4.0  # events cover about a fifth of the tokens


def clip_pixels(frames: np.ndarray, fps: float, seconds: float) -> torch.Tensor:
    """[T, 3, 224, 224] fp16 in [-1, 1]: the frames inference gives the Synchformer (fp16 to halve the memory)."""
    picked = load_video_frames(torch.from_numpy(frames), fps, seconds, clip_size=None)
    return sync_pixels(picked.sync_frames).half()


def token_times(n_frames: int) -> np.ndarray:
    """Centre time (s) of every token of ``encode_video``: segment i, tubelet j covers frames 8i+2j, 8i+2j+1."""
    segments = (n_frames - SYNC_SEGMENT) // SYNC_STRIDE + 1
    tubelets = SYNC_SEGMENT // 2
    return np.array([(SYNC_STRIDE * i + 2 * j + 1) / SYNC_FPS for i in range(segments) for j in range(tubelets)])


def event_envelope(times: np.ndarray, events: list[float]) -> np.ndarray:
    if not events:
        return np.zeros_like(times)
    d = np.abs(times[:, None] - np.asarray(events)[None]).min(axis=1)
    return np.exp(-0.5 * (d / ENVELOPE_S) ** 2)


class EventHead(nn.Module):
    """The Synchformer plus a linear read-out per token (only the Synchformer is kept)."""

    def __init__(self, synchformer: Synchformer):
        super().__init__()
        self.synchformer = synchformer
        self.head = nn.Linear(synchformer.config.embed_dim, 1)

    def forward(self, segments: torch.Tensor) -> torch.Tensor:  # [B, 1, 16, 3, H, W] -> [B, 8] logits
        return self.head(self.synchformer(segments))[:, 0, :, 0]


def proxy_loss(model, batch):
    segments, target = batch
    logits = model(segments)
    loss = nn.functional.binary_cross_entropy_with_logits(logits, target, pos_weight=torch.tensor(POS_WEIGHT))
    return loss, {"bce": float(loss.detach())}


def segment_batches(pixels: list[torch.Tensor], events: list[list[float]], batch: int,
                    seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Random 16-frame segments (the Synchformer's unit) with the event envelope of their 8 tokens."""
    rng = random.Random(seed)
    index = [(c, s) for c, p in enumerate(pixels) for s in range((p.shape[0] - SYNC_SEGMENT) // SYNC_STRIDE + 1)]
    tubelets = SYNC_SEGMENT // 2
    while True:
        segs, targets = [], []
        for c, s in rng.sample(index, min(batch, len(index))):
            segs.append(pixels[c][SYNC_STRIDE * s: SYNC_STRIDE * s + SYNC_SEGMENT].float())
            times = token_times(pixels[c].shape[0])[tubelets * s: tubelets * (s + 1)]
            targets.append(torch.from_numpy(event_envelope(times, events[c])).float())
        yield torch.stack(segs)[:, None], torch.stack(targets)


__all__ = ["ENVELOPE_S", "EventHead", "clip_pixels", "event_envelope", "proxy_loss", "segment_batches", "token_times"]
