"""Speaker similarity with resemblyzer's bundled GE2E encoder (cosine of utterance embeddings)."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .asr import MetricUnavailable


@lru_cache(maxsize=1)
def _encoder():
    try:
        from resemblyzer import VoiceEncoder
    except ImportError as exc:
        raise MetricUnavailable(f"speaker similarity needs resemblyzer ({exc})") from exc
    return VoiceEncoder("cpu", verbose=False)


def embed(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    from resemblyzer import preprocess_wav

    return _encoder().embed_utterance(preprocess_wav(np.asarray(wave, np.float32), source_sr=sample_rate))


def speaker_similarity(a: np.ndarray, b: np.ndarray, sample_rate: int) -> float:
    ea, eb = embed(a, sample_rate), embed(b, sample_rate)
    return float(np.dot(ea, eb) / (np.linalg.norm(ea) * np.linalg.norm(eb)))
