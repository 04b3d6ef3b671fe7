"""Fit audio to a duration: trim/pad, loop, pitch-preserving stretch (WSOLA crossfades) or speed change."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio.functional as AF

from .errors import MediaError

FIT_MODES = ("trim_pad", "loop", "stretch", "speed")
ALIGNS = ("start", "center", "end")
MAX_STRETCH = 4.0  # beyond 4x either way WSOLA smears into an echo; refuse rather than ruin it
WSOLA_FRAME_S = 0.04  # ~ two pitch periods of low voices: long enough to keep pitch, short enough for transients


def fit_audio(wave: torch.Tensor, sample_rate: int, target_samples: int, mode: str = "trim_pad",
              align: str = "start", fade_ms: float = 5.0) -> torch.Tensor:
    """Make [C, T] exactly ``target_samples`` long.

    trim_pad: cut or pad with silence (``align`` says which side keeps its content);
    loop: repeat with a short crossfade at each seam, then cut; stretch: time-stretch without
    changing pitch (WSOLA); speed: resample, so pitch follows speed (tape-style).
    ``fade_ms`` fades in/out where content was cut so no click appears.
    """
    if mode not in FIT_MODES:
        raise MediaError(f"fit mode must be one of {FIT_MODES}, got {mode!r}")
    if align not in ALIGNS:
        raise MediaError(f"align must be one of {ALIGNS}, got {align!r}")
    if target_samples < 1:
        raise MediaError(f"target length must be at least 1 sample, got {target_samples}")
    if fade_ms < 0:
        raise MediaError(f"fade must be >= 0 ms, got {fade_ms}")
    have = wave.shape[-1]
    if have == 0:
        raise MediaError("cannot fit empty audio")
    if have == target_samples:
        return wave
    fade = int(round(fade_ms * 1e-3 * sample_rate))
    if mode == "trim_pad":
        return trim_pad(wave, target_samples, align, fade)
    if mode == "loop":
        return loop(wave, target_samples, fade)
    ratio = target_samples / have
    if not 1 / MAX_STRETCH <= ratio <= MAX_STRETCH:
        raise MediaError(f"{mode} factor {ratio:.3f} is outside [1/{MAX_STRETCH:g}, {MAX_STRETCH:g}]; "
                         "use trim_pad or loop for such length changes")
    if mode == "speed":
        # A small rational ratio keeps the sinc kernel small; the last few samples are then trimmed/padded.
        ratio_q = Fraction(target_samples, have).limit_denominator(1000)
        out = AF.resample(wave.to(torch.float32), ratio_q.denominator, ratio_q.numerator)
        return _exact(out, target_samples)
    return _exact(wsola(wave, sample_rate, ratio), target_samples)


def trim_pad(wave: torch.Tensor, target: int, align: str = "start", fade: int = 0) -> torch.Tensor:
    have = wave.shape[-1]
    if have > target:
        offset = {"start": 0, "center": (have - target) // 2, "end": have - target}[align]
        out = wave[:, offset:offset + target].clone()
        if fade:
            if offset + target < have:
                out = _fade(out, fade, out_end=True)
            if offset > 0:
                out = _fade(out, fade, out_end=False)
        return out
    pad = target - have
    left = {"start": 0, "center": pad // 2, "end": pad}[align]
    return F.pad(wave, (left, pad - left))


def loop(wave: torch.Tensor, target: int, fade: int = 0) -> torch.Tensor:
    have = wave.shape[-1]
    fade = min(fade, have // 4)
    if fade == 0:
        reps = math.ceil(target / have)
        return wave.repeat(1, reps)[:, :target].clone()
    ramp = torch.linspace(0.0, 1.0, fade)
    body = wave[:, : have - fade]
    out = [wave[:, : have - fade]]
    length = have - fade
    while length < target:
        # Each seam crossfades the tail of the previous copy into the head of the next.
        seam = wave[:, have - fade:] * (1 - ramp) + wave[:, :fade] * ramp
        out += [seam, body[:, fade:]]
        length += have - fade
    out.append(wave[:, have - fade:])
    return _fade(torch.cat(out, dim=1)[:, :target].contiguous(), fade, out_end=True)


def wsola(wave: torch.Tensor, sample_rate: int, ratio: float) -> torch.Tensor:
    """Waveform-similarity overlap-add time stretch by ``ratio`` (output/input length), pitch kept.

    Verhelst & Roelands (1993): Hann frames at 50 % overlap; each next frame is taken within
    +-tolerance of its nominal input position where it best continues the previous frame.
    """
    x = wave.to(torch.float32).numpy()
    channels, have = x.shape
    n = max(16, int(round(WSOLA_FRAME_S * sample_rate)) // 2 * 2)
    hop = n // 2
    tol = hop // 2
    window = np.hanning(n + 1)[:n].astype(np.float32)  # periodic Hann: sums to 1 at 50 % overlap
    out_len = int(round(have * ratio))
    frames = out_len // hop + 3
    # A frame before time 0 makes the first hop full-weight (no fade-in); it is dropped at the end.
    pad = np.pad(x, ((0, 0), (tol + hop, n + tol + int(hop / ratio) + hop)))
    mono = pad.mean(axis=0)
    out = np.zeros((channels, frames * hop + n), dtype=np.float32)
    prev = tol  # padded position of the previous frame
    for m in range(frames):
        nominal = tol + int(round(m * hop / ratio))
        if m == 0:
            pos = nominal
        else:
            natural = mono[prev + hop: prev + hop + n]
            lo = max(0, nominal - tol)
            region = mono[lo: lo + n + 2 * tol]
            if len(region) < n or not natural.any():
                pos = nominal
            else:
                score = _correlate_valid(region, natural)
                pos = lo + int(np.argmax(score))
        pos = min(pos, pad.shape[1] - n)
        out[:, m * hop: m * hop + n] += pad[:, pos: pos + n] * window
        prev = pos
    return torch.from_numpy(out[:, hop:hop + out_len].copy())


def _correlate_valid(signal: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Cross-correlation at every full overlap (len(signal) - len(kernel) + 1 lags), via real FFTs."""
    size = 1 << int(np.ceil(np.log2(len(signal) + len(kernel))))
    spectrum = np.fft.rfft(signal, size) * np.conj(np.fft.rfft(kernel, size))
    return np.fft.irfft(spectrum, size)[: len(signal) - len(kernel) + 1]


def _exact(wave: torch.Tensor, target: int) -> torch.Tensor:
    if wave.shape[-1] >= target:
        return wave[:, :target].contiguous()
    return F.pad(wave, (0, target - wave.shape[-1]))


def _fade(wave: torch.Tensor, fade: int, out_end: bool) -> torch.Tensor:
    fade = min(fade, wave.shape[-1])
    if fade == 0:
        return wave
    ramp = torch.linspace(0.0, 1.0, fade)
    if out_end:
        wave[:, -fade:] *= ramp.flip(0)
    else:
        wave[:, :fade] *= ramp
    return wave
