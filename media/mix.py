"""Mix any number of tracks with gains and roles: dialogue ducks effects/music, the sum is loudness
normalised (EBU R128) and true-peak limited, and the stems share the mix's gains so they add up to it."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .audio_io import convert_channels, resample
from .ducking import duck_gain
from .errors import MediaError
from .loudness import MAX_GAIN_DB, db_to_gain, integrated_loudness, limiter_gain

ROLES = ("dialogue", "effects", "music")
MAX_TRACK_GAIN_DB = 48.0


@dataclass
class Track:
    wave: torch.Tensor  # [C, T]
    sample_rate: int
    gain_db: float = 0.0
    role: str = "effects"
    offset_s: float = 0.0
    name: str = ""


@dataclass
class MixResult:
    mix: torch.Tensor
    stems: dict[str, torch.Tensor]  # role -> [C, T], zeros for roles without tracks; they sum to ``mix``
    sample_rate: int
    report: dict = field(default_factory=dict)
    # Music & effects for international versions: not ducked (the dialogue it ducked under is replaced
    # by each dub), same loudness gain as the mix, its own true-peak limiting.
    m_and_e: torch.Tensor | None = None


def mix_tracks(tracks: list[Track], sample_rate: int = 0, channels: int = 2, target_lufs: float | None = None,
               true_peak_db: float | None = -1.0, ducking: dict | None = None,
               duck_roles: tuple[str, ...] = ("effects", "music"), length: int = 0) -> MixResult:
    """Sum ``tracks`` (sample_rate 0 = highest of the tracks; length 0 = longest track end).

    ducking: None, or duck_gain options (depth_db, threshold_db, attack_ms, release_ms, hold_ms)
    applied to ``duck_roles`` with the dialogue stem as sidechain.
    """
    if not tracks:
        raise MediaError("mix needs at least one track")
    for t in tracks:
        if t.role not in ROLES:
            raise MediaError(f"track {t.name or '?'}: role must be one of {ROLES}, got {t.role!r}")
        if abs(t.gain_db) > MAX_TRACK_GAIN_DB:
            raise MediaError(f"track {t.name or '?'}: gain {t.gain_db} dB is outside +-{MAX_TRACK_GAIN_DB} dB")
        if t.offset_s < 0:
            raise MediaError(f"track {t.name or '?'}: offset must be >= 0 s, got {t.offset_s}")
    rate = sample_rate or max(t.sample_rate for t in tracks)
    placed = []
    for t in tracks:
        wave = convert_channels(resample(t.wave, t.sample_rate, rate), channels) * db_to_gain(t.gain_db)
        placed.append((t.role, F.pad(wave, (int(round(t.offset_s * rate)), 0))))
    total = length or max(w.shape[-1] for _, w in placed)
    stems = {role: torch.zeros(channels, total) for role in ROLES}
    for role, wave in placed:
        n = min(total, wave.shape[-1])
        stems[role][:, :n] += wave[:, :n]
    report: dict = {"sample_rate": rate, "samples": total}
    m_and_e = stems["effects"] + stems["music"]
    if ducking is not None and float(stems["dialogue"].abs().max()) > 0:
        gain = duck_gain(stems["dialogue"], rate, total, **ducking)
        for role in duck_roles:
            stems[role] = stems[role] * gain
        report["ducked_min_gain_db"] = 20 * float(torch.log10(gain.min().clamp_min(1e-9)))
    mix = sum(stems.values())
    if target_lufs is not None:
        measured = integrated_loudness(mix, rate)
        report["input_lufs"] = measured
        if measured != float("-inf"):
            gain = db_to_gain(max(-MAX_GAIN_DB, min(MAX_GAIN_DB, target_lufs - measured)))
            mix = mix * gain
            stems = {k: v * gain for k, v in stems.items()}
            m_and_e = m_and_e * gain
    if true_peak_db is not None:
        curve = limiter_gain(mix, rate, true_peak_db)
        mix = mix * curve
        stems = {k: v * curve for k, v in stems.items()}
        m_and_e = m_and_e * limiter_gain(m_and_e, rate, true_peak_db)
    report["output_lufs"] = integrated_loudness(mix, rate)
    return MixResult(mix, stems, rate, report, m_and_e)
