"""Sampling an MMDiT: Euler flow matching with CFG, seeds, variations and variable duration."""
from __future__ import annotations

import dataclasses
import weakref
from dataclasses import dataclass
from typing import Optional

import torch

from ..common.cuda_graph import GraphCache, weight_addresses
from ..common.flow_matching import StepCallback, cfg_combine, euler_sample
from .mmdit import SYNC_TOKENS_PER_SEGMENT, MMDiT, Conditions
from .preprocess import clip_seq_len, sync_seq_len

DEFAULT_STEPS = 25  # paper 4 / MMAudio
DEFAULT_CFG = 4.5


@dataclass
class SampleResult:
    latent: torch.Tensor  # [B, N, C] un-normalised, ready for the VAE decoder (after transpose)
    frames: torch.Tensor  # [B] number of valid latent frames per sample


def initial_noise(batch: int, latent_len: int, latent_dim: int, seed: int, device="cpu") -> torch.Tensor:
    """Seeded on the CPU so a seed gives the same audio on every device."""
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.randn(batch, latent_len, latent_dim, generator=g, dtype=torch.float32).to(device)


def sample(
    net: MMDiT,
    cond: Conditions,
    uncond: Optional[Conditions],
    noise: torch.Tensor,
    *,
    num_steps: int = DEFAULT_STEPS,
    cfg_scale: float = DEFAULT_CFG,
    latent_mask: Optional[torch.Tensor] = None,
    callback: Optional[StepCallback] = None,
    batched_cfg: bool = True,
    timesteps: Optional[torch.Tensor] = None,
    cuda_graph: bool = False,
) -> torch.Tensor:
    """Normalised latents after ``num_steps`` Euler steps from ``noise`` (t: 0 -> 1).

    With ``batched_cfg`` the conditional and unconditional passes share one forward of batch 2B.
    ``cuda_graph`` (CUDA, batched CFG) replays that forward from a captured CUDA graph each step.
    """
    b, n = noise.shape[:2]
    guided = uncond is not None and cfg_scale >= 1.0
    cond = cond.expand(b) if cond.batch == 1 else cond
    uncond = uncond.expand(b) if guided and uncond.batch == 1 else uncond
    pair = Conditions.cat(cond, uncond) if guided and batched_cfg else None
    mask2 = None if latent_mask is None else torch.cat([latent_mask, latent_mask])
    rots = net.rotations(n, cond.clip.shape[1], cond.text.shape[1], cond.text_rope_from, noise.device)
    dtype = net.dtype

    def velocity(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        xin = x.to(dtype)
        if pair is not None:
            v = net.predict_flow(torch.cat([xin, xin]), t.expand(2 * b), pair, mask2, rots).float()
            return cfg_combine(v[:b], v[b:], cfg_scale)
        tb = t.expand(b)
        v = net.predict_flow(xin, tb, cond, latent_mask, rots).float()
        if not guided:
            return v
        return cfg_combine(v, net.predict_flow(xin, tb, uncond, latent_mask, rots).float(), cfg_scale)

    if cuda_graph and pair is not None and noise.is_cuda:
        velocity = _graphed_velocity(net, pair, mask2, rots, cfg_scale, noise)
    return euler_sample(velocity, noise.float(), num_steps=num_steps, timesteps=timesteps, callback=callback)


# One graph per network; its memory pool (one forward's activations) is held while cached, also
# while a model manager has the weights offloaded: a recapture replaces it when anything changed.
_GRAPHS: "weakref.WeakKeyDictionary[MMDiT, GraphCache]" = weakref.WeakKeyDictionary()


def _graphed_velocity(net: MMDiT, pair: Conditions, mask2, rots, cfg_scale: float, noise: torch.Tensor):
    """The batched-CFG velocity as a replayed CUDA graph. The conditions and mask are graph inputs,
    so one capture serves every generation of the same shapes until the weights move."""
    b, dtype = noise.shape[0], net.dtype
    names = [f.name for f in dataclasses.fields(Conditions) if isinstance(getattr(pair, f.name), torch.Tensor)]
    inputs = [getattr(pair, n) for n in names] + ([] if mask2 is None else [mask2])

    def step(t, x, *tensors):
        cond = dataclasses.replace(pair, **dict(zip(names, tensors)))
        xin = x.to(dtype)
        v = net.predict_flow(torch.cat([xin, xin]), t.expand(2 * b), cond, tensors[-1] if mask2 is not None else None,
                             rots).float()
        return cfg_combine(v[:b], v[b:], cfg_scale)

    t0 = torch.zeros((), device=noise.device)
    key = (tuple(names), tuple((a.shape, a.dtype) for a in [noise, *inputs]), pair.text_rope_from, float(cfg_scale),
           weight_addresses(net))
    graph = _GRAPHS.setdefault(net, GraphCache()).get(key, step, t0, noise.float(), *inputs)
    graph.load(2, inputs)  # this run's conditions, once; each step then sets only t and x
    return graph


@torch.no_grad()
def generate(
    net: MMDiT,
    *,
    duration_s: float,
    seed: int = 0,
    variations: int = 1,
    num_steps: int = DEFAULT_STEPS,
    cfg_scale: float = DEFAULT_CFG,
    clip_f: Optional[torch.Tensor] = None,
    sync_f: Optional[torch.Tensor] = None,
    text_f: Optional[torch.Tensor] = None,
    text_mask: Optional[torch.Tensor] = None,
    negative_text_f: Optional[torch.Tensor] = None,
    negative_text_mask: Optional[torch.Tensor] = None,
    lyrics_f: Optional[torch.Tensor] = None,
    lyrics_mask: Optional[torch.Tensor] = None,
    latent_len: Optional[int] = None,
    callback: Optional[StepCallback] = None,
    batched_cfg: bool = True,
    cuda_graph: bool = False,
    noise: Optional[torch.Tensor] = None,
) -> SampleResult:
    """Generate ``variations`` latents for one set of conditions (any subset may be None).

    ``noise`` [variations, n, latent_dim] replaces the seeded starting noise (a window of a longer
    clip takes its slice of the whole clip's noise, so overlapping windows start alike).
    """
    device = net.latent_mean.device
    n = latent_len or net.latent_len_for(duration_s)
    frames = min(n, net.latent_len_for(duration_s))
    latent_mask = None
    if frames < n:
        latent_mask = (torch.arange(n, device=device) < frames).unsqueeze(0).expand(variations, -1)
    # A missing stream is its learned empty feature at MMAudio's length for the duration (sequence_config.py).
    lens = dict(clip_len=max(1, clip_seq_len(duration_s)) if clip_f is None else clip_f.shape[1],
                sync_len=max(SYNC_TOKENS_PER_SEGMENT, sync_seq_len(duration_s)) if sync_f is None else sync_f.shape[1])
    cond = net.encode_conditions(batch=1, latent_len=n, clip_f=clip_f, sync_f=sync_f, text_f=text_f, text_mask=text_mask,
                                 lyrics_f=lyrics_f, lyrics_mask=lyrics_mask, duration_s=duration_s, **lens)
    lyr_len = None if lyrics_f is None else lyrics_f.shape[1]
    empty_lyrics = None
    if net.config.lyrics_dim and lyr_len is not None:
        empty_lyrics = net.empty_lyrics_feat.unsqueeze(0).expand(1, lyr_len, -1)
    uncond = net.encode_conditions(batch=1, latent_len=n, text_f=negative_text_f, text_mask=negative_text_mask,
                                   lyrics_f=empty_lyrics,
                                   duration_s=duration_s, clip_len=cond.clip.shape[1], sync_len=lens["sync_len"])
    if uncond.text.shape[1] != cond.text.shape[1]:
        batched_cfg = False  # e.g. a T5 prompt longer than the empty string: run the passes separately
    if noise is None:
        noise = initial_noise(variations, n, net.config.latent_dim, seed, device)
    elif tuple(noise.shape) != (variations, n, net.config.latent_dim):
        raise ValueError(f"noise must be {(variations, n, net.config.latent_dim)}, got {tuple(noise.shape)}")
    noise = noise.to(device)
    x = sample(net, cond.expand(variations), uncond, noise, num_steps=num_steps, cfg_scale=cfg_scale,
               latent_mask=latent_mask, callback=callback, batched_cfg=batched_cfg, cuda_graph=cuda_graph)
    # Un-normalised in float32 even for a bf16 network: the VAE sees full-precision latents.
    latent = x.float() * net.latent_std.float() + net.latent_mean.float()
    return SampleResult(latent,
                        torch.full((variations,), frames, dtype=torch.long))
