"""Audio-visual synchrony: AV-Align, onset-vs-event error, lip-speech offset and confidence."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .signals import lagged_correlation, onset_strength, rms_envelope, robust_peaks, zscore


def motion_onsets(frames: np.ndarray) -> np.ndarray:
    """Local motion energy above its running median: peaks where objects move fastest (a falling
    ball at contact) or change suddenly. A global colour change (lighting, mood) is removed by
    subtracting each frame's median change, so it does not count as motion."""
    from scipy.ndimage import median_filter

    f = frames.astype(np.float32) / (255.0 if frames.max() > 1.5 else 1.0)
    d = np.diff(f, axis=0)
    d = d - np.median(d, axis=(1, 2), keepdims=True)
    energy = np.concatenate([[0.0], np.abs(d).mean(axis=(1, 2, 3))])
    return np.maximum(0.0, energy - median_filter(energy, size=7, mode="nearest"))


def av_align(frames: np.ndarray, wave: np.ndarray, sample_rate: int, fps: float, *, window: int = 3) -> dict:
    """AV-Align (MTV 7.3, after Yariv et al.): audio onset peaks vs visual motion peaks matched
    within ``window`` frames; score = (matched audio peaks + matched video peaks) / (all peaks)."""
    n = len(frames)
    a_peaks = robust_peaks(onset_strength(wave, sample_rate, fps)[:n])
    v_peaks = robust_peaks(motion_onsets(frames))
    if len(a_peaks) + len(v_peaks) == 0:
        return {"av_align": float("nan"), "audio_peaks": 0, "video_peaks": 0}
    ma = sum(bool(np.any(np.abs(v_peaks - a) <= window)) for a in a_peaks)
    mv = sum(bool(np.any(np.abs(a_peaks - v) <= window)) for v in v_peaks)
    return {"av_align": (ma + mv) / (len(a_peaks) + len(v_peaks)),
            "audio_peaks": int(len(a_peaks)), "video_peaks": int(len(v_peaks))}


def onset_error(wave: np.ndarray, sample_rate: int, event_times: list[float], *, search: float = 0.25,
                frame_rate: float = 200.0) -> dict:
    """For each known event time, the distance to the nearest audio onset peak within ``search`` s
    (an event with no onset nearby counts as ``search``)."""
    onsets = robust_peaks(onset_strength(wave, sample_rate, frame_rate), distance=2) / frame_rate
    errors = []
    for t in event_times:
        near = np.abs(onsets - t)
        errors.append(float(near.min()) if near.size and near.min() <= search else search)
    return {"onset_error_ms": float(np.mean(errors) * 1000) if errors else float("nan"), "events": len(errors)}


@dataclass
class LipSync:
    offset_frames: int  # > 0: the audio lags the video by this many frames
    confidence: float  # peak correlation minus the median over lags (SyncNet's Sync-C analogue)
    distance: float  # 1 - peak correlation (Sync-D analogue)
    correlation: np.ndarray
    lags: np.ndarray

    def as_dict(self, fps: float) -> dict:
        return {"sync_offset_frames": self.offset_frames, "sync_offset_ms": 1000.0 * self.offset_frames / fps,
                "sync_confidence": self.confidence, "sync_distance": self.distance}


def lip_sync(mouth: np.ndarray, wave: np.ndarray, sample_rate: int, fps: float, *, max_lag: int = 15) -> LipSync:
    """Cross-correlate the mouth-opening series with the speech envelope over +-``max_lag`` frames."""
    env = rms_envelope(wave, sample_rate, fps, n=len(mouth))
    lags, corr = lagged_correlation(zscore(np.asarray(mouth, float)), zscore(env), max_lag)
    k = int(np.nanargmax(corr))
    return LipSync(int(lags[k]), float(corr[k] - np.nanmedian(corr)), float(1.0 - corr[k]), corr, lags)


MOUTH_RGB = np.array([150, 30, 40], np.float32)


def synthworld_mouth_openness(frames: np.ndarray) -> np.ndarray:
    """Mouth-opening series for synthworld clips: area of mouth-coloured pixels per frame (the cartoon
    face has no landmarks a face-mesh model would find)."""
    f = frames.astype(np.float32) * (255.0 if frames.max() <= 1.5 else 1.0)
    dist = np.abs(f - MOUTH_RGB).sum(axis=-1)
    return (dist < 60).mean(axis=(1, 2))
