"""CLIP-based video metrics: Temp-C and a Fréchet distance between frame-embedding distributions.

Both need CLIP vision weights the user supplies (nothing is downloaded); without them the metrics
raise :class:`MetricUnavailable`.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .asr import MetricUnavailable


def load_encoder(path: str | Path | None, device: str | torch.device = "cpu"):
    """The CLIP vision encoder at ``path`` (file or HF folder), or MetricUnavailable when none is given."""
    if path is None or str(path).strip() == "":
        raise MetricUnavailable("CLIP metrics (Temp-C, FD) need CLIP vision weights: give a clip_vision file or a "
                                "Hugging Face CLIP folder (e.g. `eval --clip PATH`); none is downloaded")
    if not Path(path).exists():
        raise MetricUnavailable(f"CLIP metrics: encoder weights not found at {path}")
    from ..models.common.clip_vision import load_clip_vision

    return load_clip_vision(path, device=device)


def temporal_consistency(embeddings: torch.Tensor) -> float:
    """Temp-C: mean cosine similarity of consecutive frame embeddings (MTV 5.1 / 7.3, after CLIP)."""
    if embeddings.shape[0] < 2:
        raise ValueError(f"Temp-C needs at least 2 frames, got {embeddings.shape[0]}")
    e = embeddings.double()
    return float(F.cosine_similarity(e[1:], e[:-1], dim=-1).mean())


def gaussian_stats(embeddings) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"Fréchet distance needs at least 2 embeddings [N, D], got shape {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def frechet_from_stats(mu1, sigma1, mu2, sigma2, *, eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrt(S1 S2)), with FID's handling of singular products.

    As in the FID reference (pytorch-fid / TTUR): when sqrtm(S1 S2) is not finite, both covariances
    get ``eps`` on the diagonal; a complex result with a negligible imaginary diagonal is taken real.
    """
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"embedding sizes differ: {mu1.shape} vs {mu2.shape}")
    diff = mu1 - mu2
    with warnings.catch_warnings():  # a singular product (fewer frames than dims) is expected here
        warnings.simplefilter("ignore")
        covmean = linalg.sqrtm(sigma1.dot(sigma2))
        if not np.isfinite(covmean).all():
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        imag = np.max(np.abs(np.diagonal(covmean).imag))
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3 * max(1.0, np.abs(covmean).max())):
            raise ValueError(f"Fréchet distance: sqrtm has a large imaginary component ({imag:.3g})")
        covmean = covmean.real
    value = diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)
    return float(max(value, 0.0))  # rounding can leave a tiny negative for identical sets


def frechet_distance(a, b, *, eps: float = 1e-6) -> float:
    """Fréchet distance between the Gaussians fitted to two embedding sets [N, D] and [M, D]."""
    return frechet_from_stats(*gaussian_stats(a), *gaussian_stats(b), eps=eps)


def clip_video_metrics(encoder, frames, reference=None, *, stride: int = 1, batch: int = 32) -> dict:
    """Temp-C of ``frames`` and, with a reference, FD of its frame embeddings to the reference's.

    frames / reference: [N, H, W, 3] uint8 or float 0..1; every ``stride``-th frame is embedded
    (Temp-C then compares frames ``stride`` apart).
    """
    from ..models.common.clip_vision import embed_frames

    pred = embed_frames(encoder, frames[::stride], batch=batch)
    out = {"temp_c": temporal_consistency(pred), "frames": int(pred.shape[0]), "fd": float("nan")}
    if reference is not None:
        ref = embed_frames(encoder, reference[::stride], batch=batch)
        out["fd"] = frechet_distance(pred.numpy(), ref.numpy())
        out["reference_frames"] = int(ref.shape[0])
    return out
