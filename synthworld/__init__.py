"""A synthetic audio-visual world whose correct answers are known.

Clips are deterministic by seed and need no model weights: a cartoon face speaks espeak-ng lines
with its mouth following the phoneme timing, balls bounce with an impact sound at each contact
frame, a light blinks with a beep, and synthesized music sets the background mood. Every clip
comes with its stems, transcript with word/phoneme times, event times and per-frame mouth openness.
"""
from .clip import Clip, ClipSpec, generate_clip, write_clip
from .dataset import generate_dataset

__all__ = ["Clip", "ClipSpec", "generate_clip", "write_clip", "generate_dataset"]
