"""Lip metrics from mediapipe face-mesh landmarks (JUST-DUB-IT A.1): MAR, MAR diversity, LMD.

mediapipe is optional (``pip install --no-deps mediapipe==0.10.21``); without it these raise
:class:`MetricUnavailable` with the install line.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .asr import MetricUnavailable

UPPER_INNER, LOWER_INNER, LEFT_CORNER, RIGHT_CORNER = 13, 14, 78, 308
# outer + inner lip contour of the 468-point mesh
LIP_POINTS = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 185, 40, 39, 37, 0, 267, 269, 270, 409,
              78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 191, 80, 81, 82, 13, 312, 311, 310, 415]


def _face_mesh():
    try:
        import mediapipe as mp
    except ImportError as exc:
        raise MetricUnavailable(f"lip metrics need mediapipe: pip install --no-deps mediapipe==0.10.21 ({exc})") from exc
    return mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1, min_detection_confidence=0.1)


def mesh_points(frames: np.ndarray, groups: Sequence[Sequence[int]]) -> np.ndarray:
    """``[N, len(groups), 2]`` pixel positions, each the mean of a group of face-mesh landmarks, from
    [N, H, W, 3] uint8 (or 0..1) frames; NaN where no face was found."""
    u8 = frames if frames.dtype == np.uint8 else (np.clip(frames, 0, 1) * 255).astype(np.uint8)
    out = np.full((len(u8), len(groups), 2), np.nan)
    h, w = u8.shape[1:3]
    with _face_mesh() as mesh:
        for i, frame in enumerate(u8):
            res = mesh.process(np.ascontiguousarray(frame))
            if res.multi_face_landmarks:
                lm = res.multi_face_landmarks[0].landmark
                out[i] = [np.mean([(lm[k].x * w, lm[k].y * h) for k in ids], axis=0) for ids in groups]
    return out


def lip_landmarks(frames: np.ndarray) -> np.ndarray:
    """``[N, len(LIP_POINTS), 2]`` pixel coordinates; NaN where no face was found."""
    return mesh_points(frames, [(k,) for k in LIP_POINTS])


def mouth_aspect_ratio(landmarks: np.ndarray) -> np.ndarray:
    idx = {k: LIP_POINTS.index(k) for k in (UPPER_INNER, LOWER_INNER, LEFT_CORNER, RIGHT_CORNER)}
    vert = np.linalg.norm(landmarks[:, idx[UPPER_INNER]] - landmarks[:, idx[LOWER_INNER]], axis=-1)
    horiz = np.linalg.norm(landmarks[:, idx[LEFT_CORNER]] - landmarks[:, idx[RIGHT_CORNER]], axis=-1)
    return vert / np.maximum(horiz, 1e-6)


def lip_metrics(frames: np.ndarray, reference_frames: np.ndarray | None = None) -> dict:
    lm = lip_landmarks(frames)
    mar = mouth_aspect_ratio(lm)
    found = ~np.isnan(mar)
    out = {"mar": float(np.nanmean(mar)) if found.any() else float("nan"),
           "mar_diversity": float(np.nanstd(mar)) if found.any() else float("nan"),
           "face_found_ratio": float(found.mean()) if len(found) else 0.0}
    if reference_frames is not None:
        ref = lip_landmarks(reference_frames)
        n = min(len(lm), len(ref))
        # LMD on mouth shapes: each frame's lips centred, so head position does not count
        a = lm[:n] - np.nanmean(lm[:n], axis=1, keepdims=True)
        b = ref[:n] - np.nanmean(ref[:n], axis=1, keepdims=True)
        out["lmd"] = float(np.nanmean(np.linalg.norm(a - b, axis=-1)))
    out["mar_series"] = [None if np.isnan(m) else round(float(m), 4) for m in mar]
    return out
