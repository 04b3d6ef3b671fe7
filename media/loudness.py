"""EBU R128 / ITU-R BS.1770 loudness (torchaudio's gated measurement) and true-peak limiting.

True peak follows BS.1770-4 Annex 2: peaks are read on a 4x oversampled signal (below 96 kHz),
so inter-sample overs that a DAC or lossy encoder would produce are caught.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torchaudio.functional as AF

from .errors import MediaError
from .windows import sliding_mean, sliding_min

GATE_BLOCK_S = 0.4  # BS.1770 gating block
MAX_GAIN_DB = 60.0


def db_to_gain(db: float) -> float:
    return 10.0 ** (db / 20.0)


def gain_to_db(gain: float) -> float:
    return 20.0 * math.log10(gain) if gain > 0 else float("-inf")


def integrated_loudness(wave: torch.Tensor, sample_rate: int) -> float:
    """Integrated loudness in LUFS of [C, T]; -inf for digital silence.

    Clips shorter than one 400 ms gating block are measured looped up to one block, which is what
    their loudness would be if repeated (documented fallback; BS.1770 itself needs one block).
    """
    if wave.shape[-1] == 0:
        raise MediaError("cannot measure the loudness of empty audio")
    if wave.shape[0] > 5:
        # torchaudio weights at most 5 channels (BS.1770 has no weights beyond 5.0); measure the downmix.
        wave = wave.mean(dim=0, keepdim=True)
    block = int(math.ceil(GATE_BLOCK_S * sample_rate))
    if wave.shape[-1] < block:
        wave = wave.repeat(1, math.ceil(block / wave.shape[-1]))[:, :block]
    value = float(AF.loudness(wave.to(torch.float32), sample_rate))
    return value if math.isfinite(value) else float("-inf")


def oversampling_factor(sample_rate: int) -> int:
    # BS.1770-4 Annex 2: 4x at 48 kHz; at >= 96 kHz 2x already reaches 192 kHz.
    return 4 if sample_rate < 96000 else 2


def oversampled_peak_envelope(wave: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Per input sample, the largest |value| of any channel among its oversampled points: [T]."""
    factor = oversampling_factor(sample_rate)
    up = AF.resample(wave.to(torch.float32), sample_rate, sample_rate * factor)
    t = wave.shape[-1]
    up = up[:, : t * factor]
    if up.shape[-1] < t * factor:
        up = F.pad(up, (0, t * factor - up.shape[-1]))
    env = up.abs().reshape(wave.shape[0], t, factor).amax(dim=(0, 2))
    return torch.maximum(env, wave.abs().amax(dim=0))


def true_peak_db(wave: torch.Tensor, sample_rate: int) -> float:
    """True peak in dBTP."""
    return gain_to_db(float(oversampled_peak_envelope(wave, sample_rate).max()))


def limit_true_peak(wave: torch.Tensor, sample_rate: int, ceiling_db: float = -1.0,
                    lookahead_ms: float = 5.0, release_ms: float = 80.0) -> torch.Tensor:
    """Look-ahead limiter output: ``wave`` times ``limiter_gain``."""
    return wave.to(torch.float32) * limiter_gain(wave, sample_rate, ceiling_db, lookahead_ms, release_ms)


def limiter_gain(wave: torch.Tensor, sample_rate: int, ceiling_db: float = -1.0,
                 lookahead_ms: float = 5.0, release_ms: float = 80.0) -> torch.Tensor:
    """Gain curve [T] of a look-ahead limiter keeping the true peak at or below ``ceiling_db`` dBTP.

    The gain needed per sample is spread by a sliding minimum over lookahead + release and then a
    moving average over the lookahead: the average of minima over windows that all contain a
    sample never exceeds that sample's needed gain, so the ceiling holds without overshoot while
    the gain still ramps smoothly (no clicks). Returned separately so stems can share the mix's gain.
    """
    if not -20.0 <= ceiling_db <= 0.0:
        raise MediaError(f"true-peak ceiling must be in [-20, 0] dBTP, got {ceiling_db}")
    if lookahead_ms <= 0 or release_ms < 0:
        raise MediaError("limiter look-ahead must be > 0 ms and release >= 0 ms")
    ceiling = db_to_gain(ceiling_db)
    look = max(1, int(round(lookahead_ms * 1e-3 * sample_rate)))
    hold = look + int(round(release_ms * 1e-3 * sample_rate))
    total = torch.ones(wave.shape[-1], dtype=torch.float32)
    for _ in range(4):  # the smoothed gain shifts inter-sample peaks a little: re-check
        env = oversampled_peak_envelope(wave.to(torch.float32) * total, sample_rate)
        if float(env.max()) <= ceiling * (1 + 1e-4):
            break
        needed = torch.clamp(ceiling / env.clamp_min(1e-12), max=1.0) * (1 - 1e-3)
        # Minima for the look - 1 positions before the start too, so the first samples' averages
        # also only see windows that contain them.
        minima = _windowed_min(F.pad(needed, (look - 1, 0), value=1.0), look, hold)
        gain = sliding_mean(minima, look)
        total = total * gain
    return total


def _windowed_min(x: torch.Tensor, ahead: int, behind: int) -> torch.Tensor:
    """Per sample n: min of x[n - (behind - ahead) .. n + ahead - 1], ones beyond the ends: a minimum
    that starts ``ahead`` samples early (look-ahead attack) and holds ``behind - ahead`` after."""
    padded = F.pad(x, (behind - ahead, ahead - 1), value=1.0)
    return sliding_min(padded, behind)
