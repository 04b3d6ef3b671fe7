"""DualDub's frozen frame encoder (a tiny CLIP vision tower) and its speaker encoder, trained before the LM.

CLIP: DualDub conditions on the pooled CLS output of one frame in three (paper 3.2). A random tower's pooled
output carries little of what the soundtrack depends on, so the tiny tower is first trained, through a linear
head that is then dropped, to regress per frame what the world's sound follows: the lamp lit, the mouth's
openness, and for the balls the time since the last floor contact and to the next one (clipped to 0.5 s).
The last two let the LM place a contact between two of the sampled frames, which are 120 ms apart at 25 fps.
Saved in ComfyUI's ``clip_vision`` single-file layout (``vision_model.*``); width 64 with one head and
quick-GELU is exactly what the loader infers from the shapes, so no config file is needed beside it.

What the LM then reads of the lips is measured apart from that head (``mouth_probe_r``): a ridge probe from
the pooled features of one frame in three, as the LM gets them, to the mouth's openness on held-out clips.

Speaker encoder: the paper's encoder lives in the DualDub checkpoint (``speaker_encoder.*``). It is first
trained alone to tell the world's four speakers apart (a linear classifier on its embedding, on random 3 s
crops of the training clips' speech, as paper 3.2 crops references), then handed to the LM's curriculum, which
trains it further with everything else.
"""
from __future__ import annotations

import random
from typing import Iterator

import numpy as np
import torch
from torch import nn

from ...models.dualdub.speaker import SpeakerEncoder, reference_crop
from ...synthworld.speech import SPEAKERS

CLIP_WIDTH = 64
CLIP_TARGETS = 5  # lamp lit, mouth openness, since last contact, to next contact, a contact within 40 ms
SPEAKER_NAMES = sorted(SPEAKERS)


def tiny_clip(seed: int, image_size: int = 64):
    """A CLIP vision tower (transformers ``CLIPVisionModel``) of the width the loader infers one head for."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(seed)
    cfg = CLIPVisionConfig(hidden_size=CLIP_WIDTH, intermediate_size=2 * CLIP_WIDTH, num_hidden_layers=2,
                           num_attention_heads=1, image_size=image_size, patch_size=8, projection_dim=CLIP_WIDTH,
                           hidden_act="quick_gelu")
    return CLIPVisionModel(cfg)


def clip_state_dict(model) -> dict[str, torch.Tensor]:
    """ComfyUI ``clip_vision`` layout: the tower's keys under ``vision_model.``, fp16."""
    sd = {k.removeprefix("vision_model."): v for k, v in model.state_dict().items() if not k.endswith("position_ids")}
    return {f"vision_model.{k}": v.detach().half().contiguous() for k, v in sd.items()}


def frame_targets(truth: dict, frames: int, fps: float) -> torch.Tensor:
    """[frames, CLIP_TARGETS] of what the world's sound follows, per frame."""
    t = np.arange(frames) / fps
    contacts = np.array(sorted(e["time"] for e in truth.get("impacts", [])), float)
    lit = np.zeros(frames)
    for b in truth.get("beeps", []):
        lit[(t >= b["time"]) & (t < b["time"] + 0.2)] = 1.0  # the lamp stays lit 0.2 s (synthworld.clip)
    since, until, near = np.full(frames, 0.5), np.full(frames, 0.5), np.zeros(frames)
    for c in contacts:
        d = t - c
        since = np.where((d >= 0) & (d < since), d, since)
        until = np.where((d < 0) & (-d < until), -d, until)
        near = np.maximum(near, np.exp(-0.5 * (d / 0.04) ** 2))
    mouth = np.asarray(truth.get("mouth_openness", [0.0] * frames), float)[:frames]
    return torch.tensor(np.stack([lit, mouth, since / 0.5, until / 0.5, near], 1), dtype=torch.float32)


class ClipProbe(nn.Module):
    def __init__(self, tower):
        super().__init__()
        self.tower = tower
        self.head = nn.Linear(CLIP_WIDTH, CLIP_TARGETS)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.tower(pixel_values=pixels).pooler_output)


def clip_loss(model, batch):
    pixels, target = batch
    err = (model(pixels) - target).pow(2).mean(0)
    return err.mean(), {f"mse_{i}": float(e.detach()) for i, e in enumerate(err)}


def clip_pixels(frames: np.ndarray, image_size: int) -> torch.Tensor:
    """uint8 frames -> CLIP-normalised pixels, as ``embed_frames`` prepares them at inference."""
    from ...models.common.clip_vision import CLIP_MEAN, CLIP_STD, _as_uint8_frames, clip_preprocess

    return clip_preprocess(_as_uint8_frames(frames), image_size, torch.tensor(CLIP_MEAN).view(1, 3, 1, 1),
                           torch.tensor(CLIP_STD).view(1, 3, 1, 1))


def clip_batches(frames: list[np.ndarray], targets: list[torch.Tensor], batch: int, seed: int,
                 image_size: int) -> Iterator:
    """Random frames of random clips (every frame, not only one in three: more examples per clip), prepared per
    batch: a thousand clips' frames as CLIP pixels would be 5 GB of float32, their uint8 frames are 1.2 GB."""
    rng = random.Random(seed)
    while True:
        picks = [(i, rng.randrange(len(frames[i]))) for i in (rng.randrange(len(frames)) for _ in range(batch))]
        yield (clip_pixels(np.stack([frames[i][j] for i, j in picks]), image_size),
               torch.stack([targets[i][j] for i, j in picks]))


@torch.no_grad()
def clip_r2(probe: ClipProbe, pixels: list[torch.Tensor], targets: list[torch.Tensor]) -> list[float]:
    """Per target, 1 - MSE / variance of the probe on (held-out) frames: 0 = no better than the mean."""
    pred = torch.cat([probe(p) for p in pixels])
    true = torch.cat(targets)
    mse = (pred - true).pow(2).mean(0)
    return [round(float(1 - m / v), 3) if v > 0 else None for m, v in zip(mse, true.var(0, unbiased=False))]


def _lm_frames(clip_tower, clips: list) -> tuple[torch.Tensor, torch.Tensor]:
    """The frame features the LM reads (``pipelines.dualdub.video_features``: one frame in three, paper 3.2) and
    the truth mouth openness of those frames, over ``clips``."""
    from ...models.dualdub.preprocess import clip_frame_indices
    from ...pipelines.dualdub import video_features

    feats, mouth = [], []
    for c in clips:
        feats.append(video_features(clip_tower, torch.from_numpy(c.frames).float() / 255.0, c.spec.fps)["features"])
        openness = torch.tensor(c.truth["mouth_openness"], dtype=torch.float64)
        mouth.append(openness[clip_frame_indices(len(c.frames))])
    return torch.cat(feats).double(), torch.cat(mouth)


@torch.no_grad()
def mouth_probe_r(clip_tower, train: list, held: list, ridge: float = 1e-3) -> float:
    """Can the LM see the lips? Pearson r, on held-out clips' frames, of a ridge probe from the frame features the
    LM reads to the truth mouth openness, the probe fitted on training clips' frames (never on the held-out)."""
    from ...metrics.signals import pearson

    x, y = _lm_frames(clip_tower, train)
    xh, yh = _lm_frames(clip_tower, held)
    mean, std = x.mean(0), x.std(0) + 1e-8
    z, zh = (x - mean) / std, (xh - mean) / std
    gram = z.T @ z + ridge * len(z) * torch.eye(z.shape[1], dtype=z.dtype)
    w = torch.linalg.solve(gram, z.T @ (y - y.mean()))
    return round(pearson((zh @ w + y.mean()).numpy(), yh.numpy()), 3)


class SpeakerProbe(nn.Module):
    def __init__(self, encoder: SpeakerEncoder, dim: int):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(dim, len(SPEAKER_NAMES))

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(wav))


def speaker_loss(model, batch):
    wav, label = batch
    logits = model(wav)
    loss = nn.functional.cross_entropy(logits, label)
    return loss, {"accuracy": float((logits.argmax(-1) == label).float().mean())}


def speaker_batches(speech: list[torch.Tensor], labels: list[int], batch: int, seed: int, rate: int,
                    seconds: float = 3.0) -> Iterator:
    """Random ``seconds`` crops of the clips' speech (paper 3.2's reference crop), padded to one length."""
    rng = random.Random(seed)
    n = int(seconds * rate)
    while True:
        picks = [rng.randrange(len(speech)) for _ in range(batch)]
        crops = [reference_crop(speech[i], rate, seconds, generator=torch.Generator().manual_seed(rng.randrange(2**31)),
                                random=True) for i in picks]
        crops = [torch.nn.functional.pad(c, (0, n - len(c))) for c in crops]
        yield torch.stack(crops), torch.tensor([labels[i] for i in picks])


def speaker_accuracy(encoder: SpeakerEncoder, speech: list[torch.Tensor], labels: list[int], rate: int,
                     seconds: float = 3.0) -> float:
    """Nearest-centroid accuracy of the embeddings (leave-one-out): does the embedding alone tell speakers apart?"""
    with torch.no_grad():
        emb = torch.cat([encoder(reference_crop(s, rate, seconds)[None]) for s in speech])
    emb = nn.functional.normalize(emb, dim=-1)
    lab = torch.tensor(labels)
    right = 0
    for i in range(len(emb)):
        keep = torch.arange(len(emb)) != i
        cents = torch.stack([emb[keep & (lab == k)].mean(0) if bool((keep & (lab == k)).any())
                             else torch.zeros(emb.shape[1]) for k in range(len(SPEAKER_NAMES))])
        right += int(int((cents @ emb[i]).argmax()) == labels[i])
    return right / max(1, len(emb))


__all__ = ["CLIP_WIDTH", "ClipProbe", "SpeakerProbe", "clip_batches", "clip_loss", "clip_pixels", "clip_r2",
           "clip_state_dict", "frame_targets", "mouth_probe_r", "speaker_accuracy", "speaker_batches", "speaker_loss",
           "tiny_clip"]
