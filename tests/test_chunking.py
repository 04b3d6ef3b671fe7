"""The shared long-input mechanism (models/common/chunking.py): windows, crossfades, seam metrics."""
import math

import pytest
import torch

from soundstage.models.common.chunking import (
    Window, fade, frame_jumps, overlap_add, plan_windows, seam_report, window_borders,
)


@pytest.mark.parametrize("length,window,overlap", [(10, 10, 2), (11, 10, 2), (100, 25, 5), (97, 16, 0), (1, 4, 1)])
def test_plan_covers_the_whole_with_fixed_overlaps(length, window, overlap):
    plan = plan_windows(length, window, overlap)
    assert plan[0].start == 0 and plan[-1].end == length
    assert all(w.length <= window for w in plan)
    for a, b in zip(plan, plan[1:]):
        assert a.end - b.start == overlap  # every seam shares exactly `overlap` units
        assert b.start > a.start
    if length <= window:
        assert plan == [Window(0, length)]


def test_borders_move_to_the_nearest_pause_within_tolerance():
    length, window, overlap, tol = 200, 50, 4, 15
    activity = torch.ones(length)
    pauses = [40, 81, 150]  # quiet units; the nominal borders are at 48, 94, 140, 186
    activity[pauses] = 0.0
    plan = plan_windows(length, window, overlap, activity=activity, tolerance=tol)
    borders = [w.end - overlap // 2 for w in plan[:-1]]  # middle of each overlap
    assert borders[0] == 40  # 8 units earlier: within tolerance
    assert borders[1] == 81  # 40 + 50 - 2 = 86 nominal; the pause 5 units before it wins
    assert 150 not in borders  # a pause after its nominal border is never taken (windows stay <= window)
    assert all(w.length <= window for w in plan) and plan[-1].end == length
    for a, b in zip(plan, plan[1:]):
        assert a.end - b.start == overlap


def test_plan_rejects_bad_arguments():
    with pytest.raises(ValueError, match="overlap"):
        plan_windows(10, 4, 3)
    with pytest.raises(ValueError, match="length"):
        plan_windows(0, 4, 1)
    with pytest.raises(ValueError, match="activity"):
        plan_windows(10, 4, 1, activity=torch.ones(3), tolerance=1)


def test_fades_sum_to_one_linear_and_keep_power_equal_power():
    out, inn = fade(64, "linear", torch.float64)
    assert torch.allclose(out + inn, torch.ones(64, dtype=torch.float64))
    out, inn = fade(64, "equal_power", torch.float64)
    assert torch.allclose(out ** 2 + inn ** 2, torch.ones(64, dtype=torch.float64))
    assert bool((inn[1:] > inn[:-1]).all())
    with pytest.raises(ValueError, match="curve"):
        fade(4, "cosine")


@pytest.mark.parametrize("curve", ["linear", "equal_power"])
def test_overlap_add_rebuilds_a_signal_cut_into_windows(curve):
    torch.manual_seed(0)
    length = 1000
    signal = torch.randn(2, length)
    plan = plan_windows(length, 300, 60)
    chunks = [signal[:, w.start:w.end] for w in plan]
    joined = overlap_add(chunks, [w.start for w in plan], length, dim=-1, curve="linear")
    assert torch.allclose(joined, signal, atol=1e-6)  # identical content: linear weights sum to 1
    # Uncorrelated content keeps its power through an equal-power crossfade and dips with a linear one.
    a, b = torch.randn(200_000), torch.randn(200_000)
    fout, fin = fade(200_000, curve, torch.float64)
    power = float(((a.double() * fout + b.double() * fin) ** 2).mean())
    assert (abs(power - 1) < 0.02) == (curve == "equal_power")


def test_overlap_add_on_video_frames_and_exact_length():
    frames = torch.rand(50, 4, 4, 3)
    plan = plan_windows(50, 17, 3)
    chunks = [frames[w.start:w.end] for w in plan]
    chunks[-1] = torch.cat([chunks[-1], torch.zeros(5, 4, 4, 3)])  # a model that renders a little too much
    joined = overlap_add(chunks, [w.start for w in plan], 50, dim=0)
    assert joined.shape == frames.shape and torch.allclose(joined, frames, atol=1e-6)


def test_overlap_add_rejects_gaps():
    with pytest.raises(ValueError, match="gap"):
        overlap_add([torch.ones(4), torch.ones(4)], [0, 5], 9)
    with pytest.raises(ValueError, match="cover"):
        overlap_add([torch.ones(4)], [0], 9)


def test_seam_metric_finds_a_hard_cut_and_passes_a_crossfade():
    sr = 16000
    torch.manual_seed(1)
    t = torch.arange(4 * sr) / sr
    tone_a = 0.5 * torch.sin(2 * math.pi * 220 * t)
    noise_b = 0.1 * torch.randn(4 * sr)  # another level and spectrum
    border = 2.0
    cut = torch.where(t < border, tone_a, noise_b)
    hard = seam_report(cut, sr, [border])
    assert hard["envelope"]["ratio_to_inside_max"] > 2
    assert hard["spectrum"]["ratio_to_inside_max"] > 2
    # The same two signals crossfaded over 0.5 s: no frame-to-frame jump stands out.
    n = sr // 2
    fout, fin = fade(n, "equal_power")
    s = int(border * sr) - n // 2
    smooth = cut.clone()
    smooth[s:s + n] = tone_a[s:s + n] * fout + noise_b[s:s + n] * fin
    soft = seam_report(smooth, sr, [border - 0.25, border + 0.25])
    assert soft["envelope"]["border_max"] < hard["envelope"]["border_max"] / 3


def test_frame_jumps_of_a_steady_tone_are_small():
    sr = 8000
    t = torch.arange(sr) / sr
    env, spec = frame_jumps(torch.sin(2 * math.pi * 500 * t), sr)
    assert float(env.max()) < 0.5 and float(spec.max()) < 3.0


def test_window_borders_are_both_ends_of_each_overlap():
    plan = plan_windows(100, 40, 10)
    assert window_borders(plan, 0.5) == sorted({w.start * 0.5 for w in plan[1:]} | {w.end * 0.5 for w in plan[:-1]})


def test_previous_curve_keeps_the_earlier_windows_units():
    a, b = torch.zeros(10, 1), torch.ones(10, 1)
    joined = overlap_add([a, b], [0, 7], 17, dim=0, curve="previous")
    assert joined[:10].eq(0).all() and joined[10:].eq(1).all()


def test_pause_search_with_wide_overlaps_keeps_windows_valid():
    activity = torch.rand(300, generator=torch.Generator().manual_seed(0))
    plan = plan_windows(300, 20, 10, activity=activity, tolerance=9)
    assert plan[-1].end == 300 and all(w.length <= 20 for w in plan)
    for a, b in zip(plan, plan[1:]):
        assert a.end - b.start == 10 and b.start > a.start
    for a, c in zip(plan, plan[2:]):
        assert c.start >= a.end  # a window overlaps only its neighbours
