"""Euler sampling over in-context token states (ltx_core euler_denoising_loop + EulerDiffusionStep).

The sampler knows the network only through ``denoise_fn(latents, sigma) -> denoised`` (x0
predictions, one per modality), so guidance and the model wrapper are composed outside it.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Sequence

import torch

from .in_context import TokenState, blend_clean

DenoiseFn = Callable[[Sequence[torch.Tensor], torch.Tensor], Sequence[torch.Tensor]]


def euler_step(sample: torch.Tensor, denoised: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
    velocity = (sample.float() - denoised.float()) / sigma
    return (sample.float() + velocity * (sigma_next - sigma)).to(sample.dtype)


def euler_sample(
    states: Sequence[TokenState],
    sigmas: torch.Tensor,
    denoise_fn: DenoiseFn,
    callback: Callable[[int, int], None] | None = None,
) -> list[TokenState]:
    """Run every step of ``sigmas``; conditioning tokens stay clean through ``blend_clean``."""
    states = list(states)
    total = len(sigmas) - 1
    for i in range(total):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = denoise_fn([s.latent for s in states], sigma)
        states = [
            replace(s, latent=euler_step(s.latent, blend_clean(d, s), sigma, sigma_next))
            for s, d in zip(states, denoised)
        ]
        if callback is not None:
            callback(i + 1, total)
    return states


def cfg_combine(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """ltx_core CFGGuider: ``cond + (scale - 1) * (cond - uncond)`` on the x0 predictions."""
    return cond + (scale - 1.0) * (cond - uncond)
