"""Lip-movement quality control for generated pairs (paper A.1, eqs. 4-7).

LMD (mean landmark distance between the target's and the context's lips), MAR diversity (the
standard deviation of the context's mouth aspect ratio) and their product, the Quality-Diversity
score: a pair whose context lips copy the target's (low LMD) or barely move (low MAR_div) scores
low and can be filtered out. Landmarks come from MediaPipe's face mesh (``metrics.lips``).
"""
from __future__ import annotations

import math

import numpy as np
import torch


def quality_diversity(context_landmarks: np.ndarray, target_landmarks: np.ndarray, mar: np.ndarray) -> dict[str, float]:
    """Eqs. 4-7 from ``[T, L, 2]`` lip landmarks of both videos and the context's MAR series [T].

    Frames where either face was not found (NaN) are left out; NaN scores when none remain.
    """
    n = min(len(context_landmarks), len(target_landmarks), len(mar))
    ctx, tgt, mar = context_landmarks[:n], target_landmarks[:n], np.asarray(mar[:n], np.float64)
    dist = np.linalg.norm(ctx - tgt, axis=-1)  # [T, L]
    found = ~np.isnan(dist).any(axis=1) & ~np.isnan(mar)
    if not found.any():
        return {"lmd": math.nan, "mar_diversity": math.nan, "qd": math.nan, "frames_scored": 0}
    lmd = float(dist[found].mean())  # eq. 4: mean over frames and landmarks
    mar_div = float(mar[found].std())  # eq. 6: population standard deviation
    return {"lmd": lmd, "mar_diversity": mar_div, "qd": lmd * mar_div, "frames_scored": int(found.sum())}


def pair_quality(context_frames: torch.Tensor, target_frames: torch.Tensor) -> dict[str, float]:
    """QD score of a pair from its decoded context and target half, [T, H, W, 3] 0..1 or uint8."""
    from ...metrics.lips import lip_landmarks, mouth_aspect_ratio

    ctx = lip_landmarks(context_frames.cpu().numpy())
    tgt = lip_landmarks(target_frames.cpu().numpy())
    return quality_diversity(ctx, tgt, mouth_aspect_ratio(ctx))
