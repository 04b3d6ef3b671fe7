"""Clips longer than the trained 5 s, in chunks (opt-in; beyond the paper, which names the fixed
length as a limitation in section 6).

Each chunk after the first is an image-to-audio+video run whose clean first latent frame is the
previous chunk's last frame (optionally decoded and re-encoded as a still image by ``reencode``,
which matches what the model saw in i2v training). Its first audio latent frames, the ones that
overlap the previous chunk in time, are pinned to the previous chunk's values at every step
(replaced by their re-noised version at the current sigma). Chunks are decoded separately;
:func:`stitch_frames` drops each later chunk's repeated first frame and :func:`stitch_audio`
crossfades the overlapping audio.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import torch

from ..common.chunking import overlap_add
from ..common.unipc import FlowUniPCMultistep, wan_flow_schedule
from .fusion import OviFusion
from .sampler import OviConditioning, OviSampling, guided_velocity, initial_noise


@dataclass
class Chunk:
    video: torch.Tensor  # [C, F, H, W]
    audio: torch.Tensor  # [L, C]
    audio_overlap: int  # leading audio latent frames shared with the previous chunk


def audio_advance(latent_frames: int, audio_length: int, temporal: int = 4) -> int:
    """Audio latent frames per chunk step: the chunk advances 4*(F-1) of its 4*(F-1)+1 video frames."""
    frames = temporal * (latent_frames - 1) + 1
    return round(temporal * (latent_frames - 1) * audio_length / frames)


@torch.no_grad()
def sample_chunk(model: OviFusion, cond: OviConditioning, *, latent_frames: int, latent_height: int,
                 latent_width: int, audio_length: int, sampling: OviSampling, audio_prefix: torch.Tensor | None,
                 device, callback: Callable[[int, int], None] | None = None):
    s = sampling
    vcfg, acfg = model.config.video, model.config.audio
    vid, aud = initial_noise((vcfg.in_dim, latent_frames, latent_height, latent_width), (audio_length, acfg.in_dim),
                             s.seed)
    vid, aud = vid.to(device), aud.to(device)
    prefix_noise = aud[: 0 if audio_prefix is None else audio_prefix.shape[0]].clone()
    img = None if cond.image_latent is None else cond.image_latent.float().to(device)
    schedule = wan_flow_schedule(s.steps, s.shift)
    solve_v, solve_a = FlowUniPCMultistep(schedule), FlowUniPCMultistep(schedule)
    for i, t in enumerate(schedule.timesteps.tolist()):
        if img is not None:
            vid[:, :1] = img
        if audio_prefix is not None:
            sigma = schedule.sigmas[i].item()
            aud[: len(prefix_noise)] = (1 - sigma) * audio_prefix.to(device) + sigma * prefix_noise
        tt = torch.full((1,), t, dtype=torch.int64, device=device)
        gv, ga = guided_velocity(model, vid, aud, tt, cond, s, img is not None)
        vid = solve_v.step(gv[None].float(), vid[None])[0]
        aud = solve_a.step(ga[None].float(), aud[None])[0]
        if callback is not None:
            callback(i + 1, s.steps)
    if img is not None:
        vid[:, :1] = img
    if audio_prefix is not None:
        aud[: len(prefix_noise)] = audio_prefix.to(device)
    return vid.cpu(), aud.cpu()


def sample_ovi_long(model: OviFusion, cond: OviConditioning, *, chunks: int, latent_frames: int, latent_height: int,
                    latent_width: int, audio_length: int, sampling: OviSampling | None = None, device=None,
                    reencode: Callable[[torch.Tensor], torch.Tensor] | None = None,
                    callback: Callable[[int, int], None] | None = None) -> list[Chunk]:
    """``chunks`` consecutive clips; chunk k uses seed + k. ``reencode(last_latent_frame [C,1,H,W])``
    may turn the carried frame into a still-image latent (decode the frame, encode it as an image)."""
    if chunks < 1:
        raise ValueError(f"chunks must be >= 1, got {chunks}")
    s = sampling or OviSampling()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    overlap = audio_length - audio_advance(latent_frames, audio_length)
    total = chunks * s.steps
    out: list[Chunk] = []
    for k in range(chunks):
        if k == 0:
            c, prefix = cond, None
        else:
            last = out[-1].video[:, -1:]
            c = replace(cond, image_latent=reencode(last) if reencode is not None else last)
            prefix = out[-1].audio[audio_length - overlap:] if overlap > 0 else None
        done = k * s.steps
        cb = None if callback is None else (lambda i, n, done=done: callback(done + i, total))
        v, a = sample_chunk(model, c, latent_frames=latent_frames, latent_height=latent_height,
                            latent_width=latent_width, audio_length=audio_length, sampling=replace(s, seed=s.seed + k),
                            audio_prefix=prefix, device=device, callback=cb)
        out.append(Chunk(v, a, overlap if k else 0))
    return out


def stitch_frames(chunks: list[torch.Tensor]) -> torch.Tensor:
    """Decoded chunks [T, H, W, 3] -> one clip; later chunks start with the previous last frame, which
    the earlier chunk keeps (models/common/chunking.py, curve "previous")."""
    starts, at = [], 0
    for c in chunks:
        starts.append(at)
        at += c.shape[0] - 1
    return overlap_add(chunks, starts, at + 1, dim=0, curve="previous")


def stitch_audio(chunks: list[torch.Tensor], overlap_samples: int) -> torch.Tensor:
    """Waveforms [..., T] joined with a linear crossfade over ``overlap_samples`` at each seam: the later
    chunk's pinned audio prefix renders the same content there, so linear weights keep the level."""
    starts, end = [], 0
    for c in chunks:
        start = max(0, end - min(overlap_samples, c.shape[-1])) if starts else 0
        starts.append(start)
        end = start + c.shape[-1]
    return overlap_add(chunks, starts, end, dim=-1, curve="linear")
