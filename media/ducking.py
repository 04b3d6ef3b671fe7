"""Sidechain ducking: lower background (effects, music) while the dialogue sidechain is active."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .errors import MediaError
from .loudness import db_to_gain
from .windows import sliding_mean

HOP_S = 0.01  # envelope resolution: 10 ms, finer than any sensible attack


def sidechain_activity(sidechain: torch.Tensor, sample_rate: int, threshold_db: float = -40.0,
                       window_ms: float = 30.0) -> np.ndarray:
    """Bool per 10 ms hop: is the sidechain's RMS over ``window_ms`` above ``threshold_db`` dBFS."""
    hop = max(1, int(round(HOP_S * sample_rate)))
    win = max(hop, int(round(window_ms * 1e-3 * sample_rate)))
    power = sidechain.to(torch.float32).pow(2).mean(dim=0)
    padded = F.pad(power[None, None], (win // 2, win - win // 2 - 1), mode="replicate")[0, 0]
    mean = sliding_mean(padded, win, torch.arange(0, power.shape[0], hop))
    rms_db = 10.0 * torch.log10(mean.clamp_min(1e-12))
    return (rms_db > threshold_db).numpy()


def duck_gain(sidechain: torch.Tensor, sample_rate: int, length: int, depth_db: float = 12.0,
              threshold_db: float = -40.0, attack_ms: float = 20.0, release_ms: float = 300.0,
              hold_ms: float = 150.0) -> torch.Tensor:
    """Gain curve [length] for the background: 1 when the sidechain is quiet, -depth_db under it.

    Attack/release are one-pole time constants on a 10 ms grid; hold keeps the duck through the
    short gaps between words so the background does not pump.
    """
    if not 0.0 <= depth_db <= 60.0:
        raise MediaError(f"ducking depth must be in [0, 60] dB, got {depth_db}")
    if not -90.0 <= threshold_db <= 0.0:
        raise MediaError(f"ducking threshold must be in [-90, 0] dBFS, got {threshold_db}")
    if attack_ms < 0 or release_ms < 0 or hold_ms < 0:
        raise MediaError("ducking attack, release and hold must be >= 0 ms")
    hop = max(1, int(round(HOP_S * sample_rate)))
    active = sidechain_activity(sidechain, sample_rate, threshold_db)
    hops = int(math.ceil(length / hop)) + 1
    act = np.zeros(hops, dtype=bool)
    act[: min(hops, len(active))] = active[:hops]
    hold_hops = int(round(hold_ms * 1e-3 / HOP_S))
    if hold_hops:
        held = act.copy()
        for k in range(1, hold_hops + 1):
            held[k:] |= act[:-k]
        act = held
    floor = db_to_gain(-depth_db)
    a_att = math.exp(-HOP_S / max(attack_ms * 1e-3, 1e-9)) if attack_ms > 0 else 0.0
    a_rel = math.exp(-HOP_S / max(release_ms * 1e-3, 1e-9)) if release_ms > 0 else 0.0
    curve = np.empty(hops, dtype=np.float64)
    g = 1.0
    for i, on in enumerate(act):
        target = floor if on else 1.0
        coeff = a_att if target < g else a_rel
        g = target + coeff * (g - target)
        curve[i] = g
    hop_times = np.arange(hops) * hop
    return torch.from_numpy(np.interp(np.arange(length), hop_times, curve).astype(np.float32))


def duck(background: torch.Tensor, sidechain: torch.Tensor, sample_rate: int, **options) -> torch.Tensor:
    """Background [C, T] ducked under sidechain [C', T'] (same rate)."""
    return background * duck_gain(sidechain, sample_rate, background.shape[-1], **options)
