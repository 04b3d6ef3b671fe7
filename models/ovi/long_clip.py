"""Clips longer than the trained 5 s, in chunks (opt-in; beyond the paper, which names the fixed
length as a limitation in section 6).

Each chunk after the first continues from the previous chunk's last ``carry`` video latent frames.
The first of them becomes the chunk's clean first latent frame: an image-to-audio+video run, the one
clean frame Ovi's i2v training conditions on. A causal VAE's later latent frames each hold 4 frames, and
the first one a single image, so ``reencode`` (video_vae.last_frame_reencoder) may decode the previous
chunk up to the carried frame and encode the last decoded frame as a still image instead: what the model
saw in i2v training, and the very frame the stitch keeps at the join. The others (carry > 1) and the first
audio latent frames, the ones that overlap the previous chunk in time, are pinned to the previous
chunk's values at every step (replaced by their re-noised version at the current sigma): the model was
not trained on more clean frames, so they steer it like an inpainting mask instead. Chunks are decoded
separately; :func:`stitch_frames` keeps the earlier chunk's frames where they overlap and
:func:`stitch_audio` crossfades the overlapping audio.
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
    video_overlap: int = 1  # leading video frames (decoded) shared with the previous chunk


def audio_advance(latent_frames: int, audio_length: int, temporal: int = 4, carry: int = 1) -> int:
    """Audio latent frames per chunk step: the chunk advances 4*(F-carry) of its 4*(F-1)+1 video frames."""
    frames = temporal * (latent_frames - 1) + 1
    return round(temporal * (latent_frames - carry) * audio_length / frames)


def overlap_frames(carry: int, temporal: int = 4) -> int:
    """Decoded video frames two chunks share: the carried first latent is one frame, the others 4 each."""
    return temporal * (carry - 1) + 1


@torch.no_grad()
def sample_chunk(model: OviFusion, cond: OviConditioning, *, latent_frames: int, latent_height: int,
                 latent_width: int, audio_length: int, sampling: OviSampling, audio_prefix: torch.Tensor | None,
                 device, callback: Callable[[int, int], None] | None = None,
                 video_prefix: torch.Tensor | None = None):
    """One chunk; ``video_prefix`` [C, n, H, W] is pinned to latent frames 1..n (after the clean image frame)."""
    s = sampling
    vcfg, acfg = model.config.video, model.config.audio
    vid, aud = initial_noise((vcfg.in_dim, latent_frames, latent_height, latent_width), (audio_length, acfg.in_dim),
                             s.seed)
    vid, aud = vid.to(device), aud.to(device)
    prefix_noise = aud[: 0 if audio_prefix is None else audio_prefix.shape[0]].clone()
    nv = 0 if video_prefix is None else video_prefix.shape[1]
    vprefix_noise = vid[:, 1:1 + nv].clone()
    vprefix = None if video_prefix is None else video_prefix.float().to(device)
    img = None if cond.image_latent is None else cond.image_latent.float().to(device)
    schedule = wan_flow_schedule(s.steps, s.shift)
    solve_v, solve_a = FlowUniPCMultistep(schedule), FlowUniPCMultistep(schedule)
    for i, t in enumerate(schedule.timesteps.tolist()):
        if img is not None:
            vid[:, :1] = img
        sigma = schedule.sigmas[i].item()
        if audio_prefix is not None:
            aud[: len(prefix_noise)] = (1 - sigma) * audio_prefix.to(device) + sigma * prefix_noise
        if vprefix is not None:
            vid[:, 1:1 + nv] = (1 - sigma) * vprefix + sigma * vprefix_noise
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
    if vprefix is not None:
        vid[:, 1:1 + nv] = vprefix
    return vid.cpu(), aud.cpu()


def sample_ovi_long(model: OviFusion, cond: OviConditioning, *, chunks: int, latent_frames: int, latent_height: int,
                    latent_width: int, audio_length: int, sampling: OviSampling | None = None, device=None,
                    reencode: Callable[[torch.Tensor], torch.Tensor] | None = None,
                    callback: Callable[[int, int], None] | None = None, carry: int = 1) -> list[Chunk]:
    """``chunks`` consecutive clips; chunk k uses seed + k. ``reencode(previous [C, F', H, W])``, given the
    previous chunk's latent frames up to and including the first carried one, may return the image latent
    [C, 1, H, W] the next chunk starts from (default: that carried latent frame itself)."""
    if chunks < 1:
        raise ValueError(f"chunks must be >= 1, got {chunks}")
    if not 1 <= carry < latent_frames:
        raise ValueError(f"carry must be in [1, latent_frames - 1], got {carry} for {latent_frames} latent frames")
    s = sampling or OviSampling()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    overlap = audio_length - audio_advance(latent_frames, audio_length, carry=carry)
    total = chunks * s.steps
    out: list[Chunk] = []
    for k in range(chunks):
        vprefix = None
        if k == 0:
            c, prefix = cond, None
        else:
            carried = out[-1].video[:, -carry:]
            first = carried[:, :1]
            upto = out[-1].video[:, : latent_frames - carry + 1]
            c = replace(cond, image_latent=reencode(upto) if reencode is not None else first)
            vprefix = carried[:, 1:] if carry > 1 else None
            prefix = out[-1].audio[audio_length - overlap:] if overlap > 0 else None
        done = k * s.steps
        cb = None if callback is None else (lambda i, n, done=done: callback(done + i, total))
        v, a = sample_chunk(model, c, latent_frames=latent_frames, latent_height=latent_height,
                            latent_width=latent_width, audio_length=audio_length, sampling=replace(s, seed=s.seed + k),
                            audio_prefix=prefix, device=device, callback=cb, video_prefix=vprefix)
        out.append(Chunk(v, a, overlap if k else 0, overlap_frames(carry) if k else 0))
    return out


def stitch_frames(chunks: list[torch.Tensor], overlap: int = 1) -> torch.Tensor:
    """Decoded chunks [T, H, W, 3] -> one clip; later chunks start with the previous chunk's last
    ``overlap`` frames, which the earlier chunk keeps (models/common/chunking.py, curve "previous")."""
    starts, at = [], 0
    for c in chunks:
        starts.append(at)
        at += c.shape[0] - overlap
    return overlap_add(chunks, starts, at + overlap, dim=0, curve="previous")


def stitch_audio(chunks: list[torch.Tensor], overlap_samples: int) -> torch.Tensor:
    """Waveforms [..., T] joined with a linear crossfade over ``overlap_samples`` at each seam: the later
    chunk's pinned audio prefix renders the same content there, so linear weights keep the level."""
    starts, end = [], 0
    for c in chunks:
        start = max(0, end - min(overlap_samples, c.shape[-1])) if starts else 0
        starts.append(start)
        end = start + c.shape[-1]
    return overlap_add(chunks, starts, end, dim=-1, curve="linear")
