"""Conditional flow matching, independent of any network.

Convention used by the pack's samplers: time ``t`` runs from noise (0) to data (1),
``x_t = (1 - t) * x0 + t * x1`` and the network predicts ``v = x1 - x0`` (MMAudio, AudioGen-Omni
paper eq. 1). diffusers' flow-match schedulers count the other way (``sigma = 1 - t``, the
network predicts ``noise - data``); the helpers below convert between the two.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
StepCallback = Callable[[int, int], None]


def euler_timesteps(num_steps: int, t0: float = 0.0, t1: float = 1.0) -> torch.Tensor:
    """``num_steps + 1`` float32 times, spaced as MMAudio's FlowMatching spaces them (linspace)."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    return torch.linspace(t0, t1, num_steps + 1, dtype=torch.float32)


def euler_sample(
    velocity: VelocityFn,
    x0: torch.Tensor,
    *,
    num_steps: int = 25,
    timesteps: Sequence[float] | torch.Tensor | None = None,
    callback: StepCallback | None = None,
    return_states: bool = False,
):
    """Integrate ``dx/dt = velocity(t, x)`` from ``timesteps[0]`` to ``timesteps[-1]`` with Euler.

    ``velocity`` receives ``t`` as a 0-dim float32 tensor (on ``x``'s device) and ``x``.
    ``callback(step_done, total)`` runs after each step; raising from it stops the loop.
    With ``return_states`` the list of the ``x`` fed to each step is returned too.
    """
    ts = euler_timesteps(num_steps) if timesteps is None else torch.as_tensor(timesteps, dtype=torch.float32)
    ts = ts.to(x0.device)
    total = len(ts) - 1
    x = x0
    states = []
    for i in range(total):
        if return_states:
            states.append(x)
        t, t_next = ts[i], ts[i + 1]
        # dt stays a float32 tensor as in MMAudio's loop, so bf16/fp32 models step identically.
        x = x + (t_next - t) * velocity(t, x)
        if callback is not None:
            callback(i + 1, total)
    return (x, states) if return_states else x


def cfg_combine(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance as MMAudio writes it: ``scale*cond + (1-scale)*uncond``."""
    return scale * cond + (1 - scale) * uncond


def guided_velocity(
    cond_fn: VelocityFn, uncond_fn: VelocityFn | None, scale: float
) -> VelocityFn:
    """A velocity function applying CFG; guidance below 1 (or no uncond branch) skips the uncond pass."""
    if uncond_fn is None or scale < 1.0:
        return cond_fn

    def fn(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return cfg_combine(cond_fn(t, x), uncond_fn(t, x), scale)

    return fn


def batched_guided_velocity(pair_fn: VelocityFn, scale: float) -> VelocityFn:
    """CFG with one forward: ``pair_fn(t, cat([x, x]))`` returns ``cat([v_cond, v_uncond])``."""

    def fn(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        v = pair_fn(t, torch.cat([x, x], dim=0))
        cond, uncond = v.chunk(2, dim=0)
        return cfg_combine(cond, uncond, scale)

    return fn


# --- training ---------------------------------------------------------------------------------


def interpolate(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``x_t = (1 - t) x0 + t x1`` with ``t`` of shape [B]."""
    t = t.view(-1, *([1] * (x0.dim() - 1))).to(x0.dtype)
    return (1 - t) * x0 + t * x1


def target_velocity(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    return x1 - x0


def sample_t(
    batch: int,
    *,
    generator: torch.Generator | None = None,
    device=None,
    distribution: str = "uniform",
) -> torch.Tensor:
    """Training times in [0, 1]: uniform, or logit-normal (SD3's emphasis on mid times)."""
    if distribution == "uniform":
        return torch.rand(batch, generator=generator, device=device)
    if distribution == "logit_normal":
        return torch.sigmoid(torch.randn(batch, generator=generator, device=device))
    raise ValueError(f"unknown t distribution {distribution!r}")


def flow_matching_loss(
    predicted: torch.Tensor,
    x0: torch.Tensor,
    x1: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean squared velocity error; ``mask`` [B, N] (True = real frame) drops padded frames."""
    err = (predicted - target_velocity(x0, x1)).pow(2)
    if mask is None:
        return err.mean()
    m = mask.to(err.dtype).view(*mask.shape, *([1] * (err.dim() - mask.dim())))
    denom = (m.sum() * err[0, 0].numel()).clamp_min(1.0)
    return (err * m).sum() / denom


# --- diffusers sigma convention ---------------------------------------------------------------


def t_to_sigma(t: torch.Tensor | float):
    """diffusers' flow-match sigma (1 = noise) from our ``t`` (0 = noise)."""
    return 1 - t


def sigma_to_t(sigma: torch.Tensor | float):
    return 1 - sigma


def velocity_to_diffusers(v: torch.Tensor) -> torch.Tensor:
    """Our ``x1 - x0`` (towards data) -> diffusers' ``noise - data`` model output."""
    return -v


def shift_sigmas(sigmas: torch.Tensor, shift: float) -> torch.Tensor:
    """diffusers' static time shift ``shift*s / (1 + (shift-1)*s)`` (FlowMatchEulerDiscreteScheduler)."""
    return shift * sigmas / (1 + (shift - 1) * sigmas)
