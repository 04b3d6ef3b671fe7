"""Flow-matching UniPC multistep solver (UniPC, Zhao et al. 2023, B(h)=bh2 variant, x0-prediction).

Semantics follow Wan's / Ovi's ``FlowUniPCMultistepScheduler``: the model predicts a velocity
``v`` with ``x_t = (1 - sigma) x0 + sigma * noise``, the solver works on ``x0 = x - sigma v``,
order 2 with a warm-up first step and a first-order final step, corrector on every step after the
first. The schedule is Wan's (below); the steps are diffusers' UniPCMultistepScheduler.

The solver knows nothing of the network: :meth:`FlowUniPCMultistep.step` takes a velocity.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class FlowSchedule:
    """Integer model timesteps (one per step) and float32 sigmas (one per step, plus the final 0)."""

    timesteps: torch.Tensor  # int64 [N]
    sigmas: torch.Tensor  # float32 [N + 1]

    def __len__(self) -> int:
        return int(self.timesteps.numel())


def training_sigma_range(num_train_timesteps: int = 1000) -> tuple[float, float]:
    """(sigma_max, sigma_min) of the training grid: float32 values of ``1 - linspace(1, 1/T, T)``."""
    alphas = np.linspace(1, 1 / num_train_timesteps, num_train_timesteps)[::-1].copy()
    sigmas = torch.from_numpy(1.0 - alphas).to(torch.float32)
    return sigmas[0].item(), sigmas[-1].item()


def shift_sigmas(sigmas, shift: float):
    """Flow shift ``s x / (1 + (s - 1) x)`` (SD3 / Wan)."""
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def wan_flow_schedule(steps: int, shift: float, num_train_timesteps: int = 1000) -> FlowSchedule:
    """Wan/Ovi sigma construction (``FlowUniPCMultistepScheduler.set_timesteps`` with a zero final sigma).

    float64 linspace from the training grid's sigma_max down to sigma_min, ``steps + 1`` points minus
    the last, shifted; timesteps truncate ``sigma * T``; sigmas are then cast to float32.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    sigma_max, sigma_min = training_sigma_range(num_train_timesteps)
    sigmas = np.linspace(sigma_max, sigma_min, steps + 1).copy()[:-1]
    sigmas = shift_sigmas(sigmas, shift)
    timesteps = torch.from_numpy(sigmas * num_train_timesteps).to(torch.int64)
    sigmas = torch.from_numpy(np.concatenate([sigmas, [0.0]]).astype(np.float32))
    return FlowSchedule(timesteps=timesteps, sigmas=sigmas)


class FlowUniPCMultistep:
    """UniPC-p / UniC-p over a :class:`FlowSchedule` (one instance per trajectory): diffusers'
    ``UniPCMultistepScheduler`` (flow prediction, bh2, x0-prediction) stepping Wan's schedule.

    diffusers builds its own flow sigmas over [1/T, 1] where Wan spans the training grid's
    [sigma_min, sigma_max] (up to 4.3e-3 apart at 50 steps, shift 5), so the schedule stays ours and is
    handed to the scheduler; with it the trajectory is bit-identical to the Wan/Ovi reference solver.
    """

    def __init__(self, schedule: FlowSchedule, *, order: int = 2, lower_order_final: bool = True,
                 disable_corrector: tuple[int, ...] = ()):
        from diffusers import UniPCMultistepScheduler  # heavy: imported where a sampler runs

        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        self.schedule = schedule
        self._scheduler = UniPCMultistepScheduler(
            num_train_timesteps=1000, solver_order=order, prediction_type="flow_prediction", use_flow_sigmas=True,
            final_sigmas_type="zero", lower_order_final=lower_order_final, predict_x0=True, solver_type="bh2",
            disable_corrector=list(disable_corrector))
        self._scheduler.set_timesteps(len(schedule))
        self._scheduler.sigmas = schedule.sigmas.to(torch.float32).cpu().clone()
        self._scheduler.timesteps = schedule.timesteps.clone()

    def __len__(self) -> int:
        return len(self.schedule)

    @property
    def step_index(self) -> int:
        return self._scheduler.step_index or 0

    def step(self, velocity: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
        """One solver step: the model's velocity at the current sigma -> the sample at the next one."""
        if self.step_index >= len(self.schedule):
            raise RuntimeError(f"the solver has taken all {len(self.schedule)} steps of its schedule")
        t = self.schedule.timesteps[self.step_index]
        return self._scheduler.step(velocity, t, sample).prev_sample
