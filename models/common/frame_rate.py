"""Frame rates as the rationals containers store (30000/1001, not 29.97 or 29)."""
from __future__ import annotations

from fractions import Fraction

# NTSC rates (n * 1000/1001): a typed 23.976, 29.97 or 59.94 means one of these.
NTSC_RATES = tuple(Fraction(n * 1000, 1001) for n in (24, 30, 48, 60, 120, 240))


def exact_rate(fps) -> Fraction:
    """29.97, 29.97002997... or Fraction(30000, 1001) -> 30000/1001; 25.0 -> 25; 12.5 -> 25/2.

    Fractions pass through; a float within 0.005 of an NTSC rate is that rate, any other float the
    nearest ratio with a denominator up to 1001 (exact for every rate containers write).
    """
    if isinstance(fps, Fraction):
        rate = fps
    else:
        value = float(fps)
        rate = next((r for r in NTSC_RATES if abs(value - r) < 5e-3), None)
        if rate is None:
            rate = Fraction(value).limit_denominator(1001)
    if rate <= 0:
        raise ValueError(f"frame rate must be positive, got {fps}")
    return rate


def frame_times(count: int, fps) -> list[float]:
    """Frame timestamps as PyAV reports them: float(i / rate), correctly rounded from the exact rational."""
    rate = exact_rate(fps)
    return [float(Fraction(i) / rate) for i in range(count)]
