"""Plain media functions: probe, decode, resize, load/resample audio, fit, mix, loudness, ducking, mux, save.

No ComfyUI imports here: nodes in ``nodes/media.py`` call these. Waveforms are float32 torch tensors
shaped [channels, samples]; frames are uint8 numpy [H, W, 3] while streaming and float IMAGE
tensors [N, H, W, 3] in 0..1 once gathered.
"""
from .errors import MediaError

__all__ = ["MediaError"]
