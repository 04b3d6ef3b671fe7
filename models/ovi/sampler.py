"""Ovi joint audio+video sampling: UniPC over both latents, CFG with skip-layer guidance.

Follows ``OviFusionEngine.generate``: one positive pass and one negative pass per step (the
negative uses the separate video/audio negative prompts and skips block ``slg_layer``), guided
separately for video and audio, and in image-to-video mode the first latent frame is overwritten
by the clean image latent before every step and after the last. Both passes go through one
batched forward by default.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..common.unipc import FlowUniPCMultistep, wan_flow_schedule
from .fusion import OviFusion


@dataclass
class OviSampling:
    steps: int = 50
    shift: float = 5.0
    video_cfg: float = 4.0
    audio_cfg: float = 3.0
    slg_layer: int = 11  # Ovi inference_fusion.yaml; <= 0 disables skip-layer guidance
    seed: int = 100
    batch_cfg: bool = True  # positive + negative in one forward (more memory, fewer launches)


@dataclass
class OviConditioning:
    """Text features [L_i, text_dim] (cut to their token counts) and an optional image latent."""

    positive: torch.Tensor
    video_negative: torch.Tensor
    audio_negative: torch.Tensor
    image_latent: torch.Tensor | None = None  # [C, 1, H, W] clean first frame (i2av)


def initial_noise(video_shape: tuple[int, ...], audio_shape: tuple[int, ...], seed: int):
    """Video [C, F, H, W] and audio [L, C] noise, each from its own generator seeded with ``seed``.

    Drawn in float32 on the CPU so a seed gives the same clip on every device.
    """
    v = torch.randn(video_shape, generator=torch.Generator("cpu").manual_seed(seed))
    a = torch.randn(audio_shape, generator=torch.Generator("cpu").manual_seed(seed))
    return v, a


def _pad_stack(items: list[torch.Tensor]) -> torch.Tensor:
    # Zero padding is what the model itself pads with, so padding here changes nothing.
    n = max(x.shape[0] for x in items)
    return torch.stack([torch.cat([x, x.new_zeros(n - x.shape[0], x.shape[1])]) for x in items])


def guided_velocity(model: OviFusion, vid: torch.Tensor, aud: torch.Tensor, t: torch.Tensor,
                    cond: OviConditioning, s: OviSampling, i2v: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """CFG-combined velocities for one step (video [C,F,H,W], audio [L,C])."""
    dev = vid.device
    slg = s.slg_layer if s.slg_layer and s.slg_layer > 0 else None
    pos_v, pos_a = cond.positive, cond.positive
    if s.batch_cfg:
        vc = _pad_stack([pos_v, cond.video_negative]).to(dev)
        ac = _pad_stack([pos_a, cond.audio_negative]).to(dev)
        v, a = model(torch.stack([vid, vid]), torch.stack([aud, aud]), t, vc, ac, first_frame_clean=i2v,
                     slg_layer=slg, slg_rows=torch.tensor([False, True]))
        vp, vn, ap, an = v[0], v[1], a[0], a[1]
    else:
        vp, ap = model(vid[None], aud[None], t, pos_v[None].to(dev), pos_a[None].to(dev), first_frame_clean=i2v)
        vn, an = model(vid[None], aud[None], t, cond.video_negative[None].to(dev),
                       cond.audio_negative[None].to(dev), first_frame_clean=i2v, slg_layer=slg)
        vp, ap, vn, an = vp[0], ap[0], vn[0], an[0]
    return vn + s.video_cfg * (vp - vn), an + s.audio_cfg * (ap - an)


@torch.no_grad()
def sample_ovi(model: OviFusion, cond: OviConditioning, *, latent_frames: int, latent_height: int,
               latent_width: int, audio_length: int, sampling: OviSampling | None = None,
               device: str | torch.device | None = None,
               callback: Callable[[int, int], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate one clip. Returns video latent [C, F, H, W] and audio latent [L, C], float32 on CPU."""
    s = sampling or OviSampling()
    vcfg, acfg = model.config.video, model.config.audio
    device = torch.device(device) if device is not None else next(model.parameters()).device
    i2v = cond.image_latent is not None
    _, ph, pw = vcfg.patch_size
    if latent_height % ph or latent_width % pw:
        raise ValueError(f"latent size {latent_height}x{latent_width} must be a multiple of the patch "
                         f"{ph}x{pw} (pixel sizes: multiples of 32)")
    if i2v:
        img = cond.image_latent
        if tuple(img.shape) != (vcfg.in_dim, 1, latent_height, latent_width):
            raise ValueError(f"image latent shape {tuple(img.shape)} does not match the video latent "
                             f"({vcfg.in_dim}, 1, {latent_height}, {latent_width})")
        img = img.float().to(device)
    vid, aud = initial_noise((vcfg.in_dim, latent_frames, latent_height, latent_width),
                             (audio_length, acfg.in_dim), s.seed)
    vid, aud = vid.to(device), aud.to(device)
    schedule = wan_flow_schedule(s.steps, s.shift)
    # Video and audio use identical schedules but separate solver histories (Ovi engine).
    solve_v, solve_a = FlowUniPCMultistep(schedule), FlowUniPCMultistep(schedule)
    for i, t in enumerate(schedule.timesteps.tolist()):
        if i2v:
            vid[:, :1] = img
        tt = torch.full((1,), t, dtype=torch.int64, device=device)
        gv, ga = guided_velocity(model, vid, aud, tt, cond, s, i2v)
        vid = solve_v.step(gv[None].float(), vid[None])[0]
        aud = solve_a.step(ga[None].float(), aud[None])[0]
        if callback is not None:
            callback(i + 1, s.steps)
    if i2v:
        vid[:, :1] = img
    return vid.cpu(), aud.cpu()
