"""Flow-matching UniPC multistep solver (UniPC, Zhao et al. 2023, B(h)=bh2 variant, x0-prediction).

Semantics follow Wan's / Ovi's ``FlowUniPCMultistepScheduler``: the model predicts a velocity
``v`` with ``x_t = (1 - sigma) x0 + sigma * noise``, the solver works on ``x0 = x - sigma v``,
order 2 with a warm-up first step and a first-order final step, corrector on every step after the
first. Scalar coefficients are computed as float32 tensors, as the reference does, so the
trajectory matches it to float32 rounding.

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


def _lambda(sigma: torch.Tensor) -> torch.Tensor:
    # log-SNR of the flow path: alpha = 1 - sigma.
    return torch.log(1 - sigma) - torch.log(sigma)


class FlowUniPCMultistep:
    """Stateful UniPC-p / UniC-p solver over a :class:`FlowSchedule` (one instance per trajectory)."""

    def __init__(self, schedule: FlowSchedule, *, order: int = 2, lower_order_final: bool = True,
                 disable_corrector: tuple[int, ...] = ()):
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        self.schedule = schedule
        self.sigmas = schedule.sigmas.to(torch.float32).cpu()
        self.order = order
        self.lower_order_final = lower_order_final
        self.disable_corrector = set(disable_corrector)
        self.step_index = 0
        self._x0_history: list[torch.Tensor] = []
        self._last_sample: torch.Tensor | None = None
        self._this_order = 1

    def __len__(self) -> int:
        return len(self.schedule)

    def _coefficients(self, step: int, prev: int, order: int, history_steps: list[int]):
        """h, the phi/B(h) terms and the rk ratios for a step from sigma[prev] to sigma[step]."""
        sig_t, sig_s0 = self.sigmas[step], self.sigmas[prev]
        lam_s0 = _lambda(sig_s0)
        h = _lambda(sig_t) - lam_s0
        rks = [(_lambda(self.sigmas[si]) - lam_s0) / h for si in history_steps]
        rks.append(torch.tensor(1.0))
        rks = torch.stack([torch.as_tensor(r, dtype=torch.float32) for r in rks])
        hh = -h  # predict_x0
        h_phi_1 = torch.expm1(hh)
        h_phi_k = h_phi_1 / hh - 1
        b_h = torch.expm1(hh)  # bh2
        factorial = 1
        r_rows, b_vals = [], []
        for i in range(1, order + 1):
            r_rows.append(torch.pow(rks, i - 1))
            b_vals.append(h_phi_k * factorial / b_h)
            factorial *= i + 1
            h_phi_k = h_phi_k / hh - 1 / factorial
        return sig_t, sig_s0, h_phi_1, b_h, rks, torch.stack(r_rows), torch.stack(b_vals)

    def _predict(self, sample: torch.Tensor, order: int) -> torch.Tensor:
        """UniP: extrapolate to the next sigma from the x0 history."""
        i = self.step_index
        m0 = self._x0_history[-1]
        history = [i - k for k in range(1, order)]
        sig_t, sig_s0, h_phi_1, b_h, rks, r, b = self._coefficients(i + 1, i, order, history)
        alpha_t = 1 - sig_t
        x_t = sig_t / sig_s0 * sample - alpha_t * h_phi_1 * m0
        if order > 1:
            d1s = torch.stack([(self._x0_history[-(k + 1)] - m0) / rks[k - 1] for k in range(1, order)], 1)
            rhos = (torch.tensor([0.5]) if order == 2 else torch.linalg.solve(r[:-1, :-1], b[:-1]))
            rhos = rhos.to(device=sample.device, dtype=sample.dtype)
            x_t = x_t - alpha_t * b_h * torch.einsum("k,bk...->b...", rhos, d1s)
        return x_t.to(sample.dtype)

    def _correct(self, x0_now: torch.Tensor, last_sample: torch.Tensor, this_sample: torch.Tensor,
                 order: int) -> torch.Tensor:
        """UniC: refine the previous prediction with the model output at the new point."""
        i = self.step_index
        m0 = self._x0_history[-1]
        history = [i - (k + 1) for k in range(1, order)]
        sig_t, sig_s0, h_phi_1, b_h, rks, r, b = self._coefficients(i, i - 1, order, history)
        alpha_t = 1 - sig_t
        rhos = torch.tensor([0.5]) if order == 1 else torch.linalg.solve(r, b)
        rhos = rhos.to(device=this_sample.device, dtype=this_sample.dtype)
        x_t = sig_t / sig_s0 * last_sample - alpha_t * h_phi_1 * m0
        corr = 0
        if order > 1:
            d1s = torch.stack([(self._x0_history[-(k + 1)] - m0) / rks[k - 1] for k in range(1, order)], 1)
            corr = torch.einsum("k,bk...->b...", rhos[:-1], d1s)
        x_t = x_t - alpha_t * b_h * (corr + rhos[-1] * (x0_now - m0))
        return x_t.to(this_sample.dtype)

    def step(self, velocity: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
        """Advance ``sample`` (batch-first) one step given the model's velocity at the current sigma."""
        i = self.step_index
        if i >= len(self):
            raise RuntimeError(f"solver already took all {len(self)} steps")
        x0 = sample - self.sigmas[i] * velocity
        if i > 0 and (i - 1) not in self.disable_corrector and self._last_sample is not None:
            sample = self._correct(x0, self._last_sample, sample, self._this_order)
        self._x0_history = (self._x0_history + [x0])[-self.order:]
        order = min(self.order, len(self) - i) if self.lower_order_final else self.order
        self._this_order = min(order, i + 1)
        self._last_sample = sample
        out = self._predict(sample, self._this_order)
        self.step_index += 1
        return out
