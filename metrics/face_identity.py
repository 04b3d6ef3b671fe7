"""Identity similarity (ID-SIM, JUST-DUB-IT 4.1 / A.1): cosine of ArcFace embeddings of two videos' faces.

Faces are found with MediaPipe's face mesh (as in :mod:`.lips`) and aligned by the 5 points ArcFace
crops use; the ArcFace weights are the user's (:func:`..models.common.arcface.load_arcface`).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..models.common.arcface import align_faces, face_embeddings
from .lips import mesh_points

# Face-mesh points for ArcFace's 5 (image-left eye, image-right eye, nose tip, mouth corners): each
# eye is the midpoint of its two corners, as detectors' eye points are eye centres.
FIVE_POINT_MESH = ((33, 133), (362, 263), (1,), (61,), (291,))

PointsFn = Callable[[np.ndarray], np.ndarray]  # [N, H, W, 3] uint8 -> [N, 5, 2] pixels, NaN = no face


def five_points(frames: np.ndarray) -> np.ndarray:
    """``[N, 5, 2]`` ArcFace landmarks in pixels; NaN where no face was found."""
    return mesh_points(frames, FIVE_POINT_MESH)


def identity_similarity(model: torch.nn.Module, frames_a: torch.Tensor, frames_b: torch.Tensor, *,
                        points_fn: PointsFn = five_points, max_frames: int = 8) -> dict:
    """Mean cosine similarity of the ArcFace embeddings of frame ``i`` of ``a`` and of ``b`` (uint8
    [T, H, W, 3]), over up to ``max_frames`` evenly spaced frames where both show a face.

    ``id_sim`` is NaN when no frame has a face in both videos.
    """
    n = min(len(frames_a), len(frames_b))
    idx = np.unique(np.linspace(0, n - 1, min(max_frames, n)).round().astype(int))
    a, b = frames_a[idx], frames_b[idx]
    pa, pb = points_fn(a.numpy()), points_fn(b.numpy())
    found = ~(np.isnan(pa).any(axis=(1, 2)) | np.isnan(pb).any(axis=(1, 2)))
    if not found.any():
        return {"id_sim": float("nan"), "frames_scored": 0}
    keep = torch.from_numpy(found)
    ea = face_embeddings(model, align_faces(a[keep], pa[found]))
    eb = face_embeddings(model, align_faces(b[keep], pb[found]))
    return {"id_sim": float((ea * eb).sum(-1).mean()), "frames_scored": int(found.sum())}
