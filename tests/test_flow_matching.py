"""Generic flow-matching utilities: Euler integration, CFG, training targets, sigma conventions."""
from __future__ import annotations

import pytest
import torch

from soundstage.models.common import flow_matching as fm


def test_euler_reaches_data_on_straight_path():
    # For the optimal-transport path the velocity towards x1 is (x1 - x) / (1 - t): exact with Euler.
    x1 = torch.randn(3, 5)
    x0 = torch.randn(3, 5)
    out = fm.euler_sample(lambda t, x: (x1 - x) / (1 - t), x0, num_steps=7)
    assert torch.allclose(out, x1, atol=1e-5)


def test_euler_constant_velocity_and_callback():
    seen = []
    x0 = torch.zeros(2)
    out, states = fm.euler_sample(lambda t, x: torch.ones_like(x) * 2, x0, num_steps=4,
                                  callback=lambda i, n: seen.append((i, n)), return_states=True)
    assert torch.allclose(out, torch.full((2,), 2.0))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert len(states) == 4 and torch.equal(states[0], x0)


def test_callback_can_interrupt():
    class Stop(Exception):
        pass

    calls = []

    def cb(i, n):
        calls.append(i)
        if i == 2:
            raise Stop

    with pytest.raises(Stop):
        fm.euler_sample(lambda t, x: x, torch.ones(1), num_steps=10, callback=cb)
    assert calls == [1, 2]


def test_timesteps_match_linspace_and_custom():
    assert torch.equal(fm.euler_timesteps(4), torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]))
    ts = []
    fm.euler_sample(lambda t, x: (ts.append(float(t)), x)[1], torch.ones(1), timesteps=[0.0, 0.5, 0.9])
    assert ts == [0.0, 0.5]


def test_cfg_combine_and_batched():
    c, u = torch.tensor([1.0]), torch.tensor([3.0])
    assert torch.allclose(fm.cfg_combine(c, u, 4.5), torch.tensor([4.5 * 1 - 3.5 * 3]))
    pair = lambda t, x: torch.cat([x[:1] * 2, x[1:] * 5])  # noqa: E731 - "cond" doubles, "uncond" x5
    v = fm.batched_guided_velocity(pair, 3.0)(torch.tensor(0.0), torch.ones(1, 2))
    assert torch.allclose(v, torch.full((1, 2), 3 * 2 - 2 * 5.0))
    sep = fm.guided_velocity(lambda t, x: x * 2, lambda t, x: x * 5, 3.0)(torch.tensor(0.0), torch.ones(1, 2))
    assert torch.allclose(sep, v)
    assert fm.guided_velocity(lambda t, x: x * 2, lambda t, x: x * 5, 0.5)(0, torch.ones(1)).item() == 2


def test_training_targets_and_masked_loss():
    x0, x1 = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    t = torch.tensor([0.0, 1.0])
    xt = fm.interpolate(x0, x1, t)
    assert torch.allclose(xt[0], x0[0]) and torch.allclose(xt[1], x1[1])
    pred = fm.target_velocity(x0, x1).clone()
    assert fm.flow_matching_loss(pred, x0, x1).item() == 0
    pred[:, 3] += 10.0  # error only in a padded frame
    mask = torch.tensor([[True, True, True, False]] * 2)
    assert fm.flow_matching_loss(pred, x0, x1, mask).item() == 0
    assert fm.flow_matching_loss(pred, x0, x1).item() > 1


def test_sigma_conventions():
    t = torch.tensor([0.0, 0.25, 1.0])
    assert torch.allclose(fm.t_to_sigma(t), torch.tensor([1.0, 0.75, 0.0]))
    assert torch.allclose(fm.sigma_to_t(fm.t_to_sigma(t)), t)
    # One diffusers Euler step x + (s_next - s) * v_d equals ours x + (t_next - t) * v.
    x, v = torch.randn(3), torch.randn(3)
    ours = x + (0.5 - 0.25) * v
    theirs = x + (fm.t_to_sigma(0.5) - fm.t_to_sigma(0.25)) * fm.velocity_to_diffusers(v)
    assert torch.allclose(ours, theirs)
    assert torch.allclose(fm.shift_sigmas(torch.tensor([0.0, 1.0, 0.5]), 3.0), torch.tensor([0.0, 1.0, 0.75]))
    assert 0 <= fm.sample_t(100, distribution="logit_normal").min() and fm.sample_t(4).shape == (4,)
