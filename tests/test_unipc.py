"""Flow UniPC solver and Wan sigma construction against the Ovi reference scheduler."""
from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors.torch import load_file

from conftest import golden_files
from soundstage.models.common.unipc import FlowUniPCMultistep, shift_sigmas, wan_flow_schedule


OVI_FILES = golden_files("ovi_fusion")


def _meta(path):
    return json.loads(path.with_suffix(".json").read_text())


@pytest.mark.parametrize("path", OVI_FILES, ids=lambda p: p.stem)
def test_wan_schedules_match_reference_exactly(golden_dir, path):
    schedules = _meta(path)["scheduler_schedules"]
    names = [k for k, v in schedules.items() if isinstance(v, dict)]
    assert names
    for name in names:
        ref = schedules[name]
        sched = wan_flow_schedule(ref["steps"], ref["shift"])
        assert sched.timesteps.dtype == torch.int64
        assert sched.timesteps.tolist() == ref["timesteps"], name
        assert torch.equal(sched.sigmas, torch.tensor(ref["sigmas"], dtype=torch.float32)), name


@pytest.mark.parametrize("path", OVI_FILES, ids=lambda p: p.stem)
def test_unipc_trajectory_matches_reference(golden_dir, path):
    meta, t = _meta(path), load_file(str(path))
    tol = meta["tolerance"]["unipc_trajectory"]
    outputs, expected = t["input.unipc_model_outputs"], t["output.unipc_trajectory"]
    shift = re.search(r"set_timesteps\(\d+, shift=([\d.]+)\)", meta.get("outputs", {}).get("unipc_trajectory", ""))
    solver = FlowUniPCMultistep(wan_flow_schedule(outputs.shape[0], float(shift.group(1)) if shift else 5.0))
    x = t["input.unipc_x_init"]
    for i in range(outputs.shape[0]):
        x = solver.step(outputs[i][None], x[None])[0]
        err = (x - expected[i]).abs().max().item()
        assert err <= tol, f"step {i}: {err}"


def test_schedule_shape_and_shift():
    s = wan_flow_schedule(10, 3.0)
    assert s.timesteps.shape == (10,) and s.sigmas.shape == (11,)
    assert s.sigmas[-1] == 0 and bool((s.sigmas[:-1].diff() < 0).all())
    assert shift_sigmas(0.5, 1.0) == 0.5 and shift_sigmas(0.5, 5.0) == pytest.approx(5 * 0.5 / 3)


def test_unipc_exact_for_straight_flow():
    # A constant velocity field (x_t = x0 + sigma * v) is integrated exactly to x0 by any order.
    torch.manual_seed(0)
    x0, noise = torch.randn(1, 3, 5), torch.randn(1, 3, 5)
    v = noise - x0
    sched = wan_flow_schedule(8, 5.0)
    solver = FlowUniPCMultistep(sched)
    x = x0 + sched.sigmas[0] * v
    for _ in range(len(sched)):
        x = solver.step(v, x)
    torch.testing.assert_close(x, x0, atol=1e-5, rtol=0)
    with pytest.raises(RuntimeError):
        solver.step(v, x)
