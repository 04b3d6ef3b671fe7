"""Inputs longer than a model's native window: window placement, crossfades and seam metrics.

One mechanism for every system. Positions are whole units of a grid the caller picks (latent frames,
Synchformer segments, video frames, codec tokens), so a window border falls exactly on a frame of every
stream the caller slices and the placement itself never shifts timing:

- :func:`plan_windows` lays windows of at most ``window`` units over ``length`` units, consecutive ones
  sharing ``overlap`` units; given an activity curve (speech energy, mouth motion) each border moves to
  the quietest unit within ``tolerance`` before its nominal place, so no window cuts a word.
- :func:`overlap_add` joins the windows' outputs (audio samples, latent frames, video frames) with a
  linear or equal-power crossfade over each overlap.
- :func:`seam_report` measures how audible the joins are: envelope and spectrum jumps between adjacent
  short frames at the window borders, against the same jumps everywhere else.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch

CURVES = ("linear", "equal_power", "previous")


@dataclass(frozen=True)
class Window:
    start: int  # first unit
    end: int  # one past the last unit

    @property
    def length(self) -> int:
        return self.end - self.start


def plan_windows(length: int, window: int, overlap: int = 0, *, activity: Optional[torch.Tensor] = None,
                 tolerance: int = 0) -> list[Window]:
    """Windows covering ``[0, length)``; each at most ``window`` long, consecutive ones overlapping by
    ``overlap`` (the last one by at least that much; it ends at ``length``).

    ``activity`` (one value per unit, e.g. RMS per frame) moves each border, the middle of the overlap,
    back by up to ``tolerance`` units to the quietest unit there (the latest of equally quiet ones).
    """
    if length <= 0:
        raise ValueError(f"length must be positive, got {length}")
    if window <= 0 or overlap < 0 or 2 * overlap > window:
        # Wider overlaps would make a window overlap more than its two neighbours.
        raise ValueError(f"need 0 <= overlap <= window / 2, got window={window}, overlap={overlap}")
    if tolerance < 0 or tolerance >= window - overlap:
        raise ValueError(f"tolerance must be in [0, window - overlap), got {tolerance}")
    if activity is not None and activity.numel() < length:
        raise ValueError(f"activity has {activity.numel()} values for {length} units")
    out: list[Window] = []
    start = 0
    while True:
        if start + window >= length:
            out.append(Window(start, length))
            break
        border = start + window - overlap // 2 - overlap % 2  # nominal middle of the overlap
        # Never so early that the next window would reach back past this one's start overlap.
        lo = max(border - tolerance, start + overlap + overlap // 2 + 1)
        if activity is not None and lo <= border:
            seg = activity.flatten()[lo: border + 1].float()
            # The quietest unit, the latest of ties (closest to the nominal border).
            border = lo + int(seg.numel() - 1 - torch.argmin(seg.flip(0)).item())
        end = border + overlap - overlap // 2
        out.append(Window(start, end))
        start = end - overlap
    return out


def fade(n: int, curve: str = "linear", dtype=torch.float32, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(fade_out, fade_in) weights over ``n`` overlapping units, sampled at the unit centres.

    linear: the two sum to 1, right for correlated content (both windows render the same events, e.g.
    latents sampled from shared noise and conditioning). equal_power: their squares sum to 1, which
    keeps the loudness of two uncorrelated signals constant. previous: no fade, the earlier window's
    units are kept (the later window re-rendered them from carried frames only to continue from them,
    as MTV's and Ovi's chunk loops do).
    """
    if curve not in CURVES:
        raise ValueError(f"crossfade curve must be one of {CURVES}, got {curve!r}")
    x = (torch.arange(n, dtype=torch.float64) + 0.5) / max(n, 1)
    if curve == "linear":
        fin = x
        fout = 1 - x
    elif curve == "previous":
        fin, fout = torch.zeros_like(x), torch.ones_like(x)
    else:
        fin, fout = torch.sin(x * math.pi / 2), torch.cos(x * math.pi / 2)
    return fout.to(dtype=dtype, device=device), fin.to(dtype=dtype, device=device)


def overlap_add(chunks: Sequence[torch.Tensor], starts: Sequence[int], length: int, *, dim: int = -1,
                curve: str = "linear") -> torch.Tensor:
    """Chunks placed at ``starts`` along ``dim`` and crossfaded where consecutive ones overlap.

    Every position of ``[0, length)`` must be covered; a chunk reaching past ``length`` is cut, and one
    window may overlap only its neighbours (the plans of :func:`plan_windows` satisfy both).
    """
    if len(chunks) != len(starts) or not chunks:
        raise ValueError("overlap_add needs one start per chunk and at least one chunk")
    ref = chunks[0]
    dim = dim % ref.dim()
    ends = [s + c.shape[dim] for s, c in zip(starts, chunks)]
    if starts[0] > 0 or max(ends) < length:
        raise ValueError(f"chunks cover [{starts[0]}, {max(ends)}), not all of [0, {length})")
    for i in range(1, len(chunks)):
        if starts[i] > ends[i - 1]:
            raise ValueError(f"gap between chunk {i - 1} (ends {ends[i - 1]}) and chunk {i} (starts {starts[i]})")
        if starts[i] <= starts[i - 1] or (i > 1 and starts[i] < ends[i - 2]):
            raise ValueError(f"chunk {i} overlaps more than its previous neighbour")
    shape = list(ref.shape)
    shape[dim] = length
    out = torch.zeros(shape, dtype=ref.dtype, device=ref.device)
    view = [1] * ref.dim()
    for i, (c, s, e) in enumerate(zip(chunks, starts, ends)):
        w = torch.ones(c.shape[dim], dtype=ref.dtype, device=ref.device)
        if i > 0 and ends[i - 1] > s:  # fade in over the overlap with the previous chunk
            n = ends[i - 1] - s
            w[:n] *= fade(n, curve, ref.dtype, ref.device)[1]
        if i + 1 < len(chunks) and e > starts[i + 1]:  # fade out over the overlap with the next one
            n = e - starts[i + 1]
            w[c.shape[dim] - n:] *= fade(n, curve, ref.dtype, ref.device)[0]
        keep = min(e, length) - s
        if keep <= 0:
            continue
        view[dim] = keep
        out.narrow(dim, s, keep).add_(c.narrow(dim, 0, keep) * w[:keep].view(view))
    return out


def window_borders(windows: Sequence[Window], unit_seconds: float) -> list[float]:
    """Seconds of every place where a window starts or ends inside the whole (both ends of each overlap)."""
    total = max(w.end for w in windows)
    marks = {w.start for w in windows[1:]} | {w.end for w in windows[:-1]}
    return sorted(m * unit_seconds for m in marks if 0 < m < total)


def _frames(wave: torch.Tensor, size: int) -> torch.Tensor:
    n = wave.shape[-1] // size
    return wave[..., : n * size].reshape(n, size)


def frame_jumps(wave: torch.Tensor, sample_rate: int, *, frame_seconds: float = 0.02,
                floor_db: float = -60.0, bands: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Jumps between adjacent ``frame_seconds`` frames of a mono waveform: (envelope [N-1] in dB,
    spectrum [N-1] in dB). Jump i is between frames i and i+1, at ``(i + 1) * frame_seconds``.

    The envelope is the frame's RMS level; the spectrum jump is the RMS difference of the two frames'
    level-normalised log spectra (Hann window, ``bands`` log-spaced bands), so a change of level alone
    counts once, in the envelope.
    Levels below ``floor_db`` under the loudest frame are clamped there (silence to silence is no jump).
    """
    size = max(2, int(round(frame_seconds * sample_rate)))
    x = _frames(wave.reshape(-1).double(), size)
    if x.shape[0] < 2:
        raise ValueError("the waveform is shorter than two seam-metric frames")
    level = 10 * torch.log10(x.pow(2).mean(-1) + 1e-20)
    level = level.clamp(min=float(level.max()) + floor_db)
    spec = torch.fft.rfft(x * torch.hann_window(size, periodic=False, dtype=x.dtype), dim=-1).abs().pow(2)
    # Log-spaced bands, not single bins: a single periodogram bin of noise swings by ~6 dB frame to frame.
    edges = torch.unique(torch.round(torch.logspace(0, math.log10(spec.shape[-1]), bands + 1)).long())
    spec = torch.stack([spec[:, a:b].mean(-1) for a, b in zip(edges[:-1].tolist(), edges[1:].tolist())], -1)
    logspec = 10 * torch.log10(spec + 1e-20)
    logspec = logspec.clamp(min=float(logspec.max()) + floor_db)
    logspec = logspec - logspec.mean(-1, keepdim=True)
    env = (level[1:] - level[:-1]).abs()
    sp = (logspec[1:] - logspec[:-1]).pow(2).mean(-1).sqrt()
    return env.float(), sp.float()


def latent_jumps(frames: torch.Tensor, *, floor_db: float = -60.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The same two jumps between adjacent frames of a feature sequence [N, D] (e.g. audio latents):
    the level of each frame (dB of its norm) and the change of its direction (dB-free: the norm of the
    difference of the unit vectors, 0..2)."""
    x = frames.double()
    norm = x.norm(dim=-1)
    level = 20 * torch.log10(norm + 1e-20)
    level = level.clamp(min=float(level.max()) + floor_db)
    unit = x / norm.clamp(min=1e-20).unsqueeze(-1)
    return (level[1:] - level[:-1]).abs().float(), (unit[1:] - unit[:-1]).norm(dim=-1).float()


def seam_report(wave: torch.Tensor, sample_rate: int, borders: Sequence[float], *, frame_seconds: float = 0.02,
                guard_seconds: float = 0.1) -> dict:
    """Envelope and spectrum jumps (:func:`frame_jumps`) at window borders against those inside windows."""
    env, sp = frame_jumps(wave, sample_rate, frame_seconds=frame_seconds)
    return jump_report(env, sp, frame_seconds, borders, guard_seconds=guard_seconds)


def jump_report(env: torch.Tensor, sp: torch.Tensor, frame_seconds: float, borders: Sequence[float], *,
                guard_seconds: float = 0.1) -> dict:
    """Envelope and spectrum jumps at window borders against those inside windows.

    ``env``/``sp``: jump i lies between frames i and i+1, at ``(i + 1) * frame_seconds``. Each border
    is measured at the frame boundary nearest to it (and the next one, so a border that falls inside a
    frame is seen from both sides); "inside" is every frame boundary farther than
    ``guard_seconds`` from all borders. Returns per-border jumps, the inside median / 95th percentile /
    max, and the ratios of the largest border jump to the inside 95th percentile and max.
    """
    times = (torch.arange(env.numel(), dtype=torch.float64) + 1) * frame_seconds
    inside = torch.ones(env.numel(), dtype=torch.bool)
    at: list[list[int]] = []
    for b in borders:
        i = int(round(b / frame_seconds)) - 1
        at.append([j for j in (i, i + 1) if 0 <= j < env.numel()])
        inside &= (times - b).abs() > guard_seconds
    if not bool(inside.any()):
        raise ValueError("no frame boundary lies inside a window; use shorter frames or a smaller guard")
    report: dict = {"borders_s": [float(b) for b in borders]}
    for name, j in (("envelope", env), ("spectrum", sp)):
        border = [float(j[idx].max()) if idx else 0.0 for idx in at]
        ins = j[inside].double()
        p95 = float(torch.quantile(ins, 0.95))
        worst = max(border, default=0.0)
        report[name] = {
            "border": border, "border_max": worst, "border_mean": sum(border) / max(1, len(border)),
            "inside_median": float(ins.median()), "inside_p95": p95, "inside_max": float(ins.max()),
            "ratio_to_inside_p95": worst / p95 if p95 > 0 else float("inf"),
            "ratio_to_inside_max": worst / float(ins.max()) if float(ins.max()) > 0 else float("inf"),
        }
    return report
