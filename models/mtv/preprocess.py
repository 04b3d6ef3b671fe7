"""MTV's glue, as suimuc/MTV_Framework @ 5704fe6 runs it.

- frames: resized to cover the 480x720 target with the other side truncated (bicubic, antialiased, on
  uint8), centre crop at floor offsets, then (x - 127.5) / 127.5 (``mtv/data_video.py``
  ``resize_for_rectangle_crop`` L34-62, L242-248); video size 480x720 (``mtv/sample_video.py`` L141);
- frame count: 49 frames per chunk = (13 latents - 1) * 4 + 1 (sample_video.py L151-152);
- audio: each stem demixed at 44.1 kHz stereo (``data_process/demix.py`` L52: ``librosa.load(sr=44100,
  mono=False)``), then mono 16 kHz for wav2vec (``mtv/sgm/utils/audio_processor.py`` L70) with one
  feature frame per video frame: ceil(samples / 16000 * fps) (L72), fps 24 at inference
  (sample_video.py L179) -- so audio frames and video frames share one rate, whatever it is.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..common.frame_rate import exact_rate
from .wav2vec_features import frame_count

VIDEO_SIZE = (480, 720)  # sample_video.py L141: image_size = [480, 720] (height, width)
DEMIX_RATE = 44100  # demix.py L52
TRAINED_FPS = 24.0  # sample_video.py L179: preprocess(..., fps=24)


def resize_for_rectangle_crop(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """uint8 [T, 3, H, W] -> uint8 [T, 3, height, width] (data_video.py L34-62, reshape_mode "center")."""
    if frames.dtype != torch.uint8:
        raise ValueError(f"expected uint8 frames, got {frames.dtype}")
    h, w = frames.shape[-2:]
    if w / h > width / height:
        size = (height, int(w * height / h))
    else:
        size = (int(h * width / w), width)
    x = frames if tuple(size) == (h, w) else F.interpolate(frames, size=size, mode="bicubic", antialias=True,
                                                            align_corners=False)
    top, left = (size[0] - height) // 2, (size[1] - width) // 2
    return x[..., top:top + height, left:left + width]


def keyframe_pixels(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """IMAGE [T, H, W, 3] (0..1) -> [T, H', W', 3] in 0..1 after MTV's uint8 cover-resize and crop."""
    u8 = (images[..., :3].float().cpu() * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 3, 1, 2)
    out = resize_for_rectangle_crop(u8.contiguous(), height, width)
    return (out.float() / 255).permute(0, 2, 3, 1)  # the VAE encoder maps it to (x - 127.5) / 127.5


def audio_frames(num_samples_16k: int, fps) -> int:
    """wav2vec feature frames for 16 kHz audio at ``fps`` video (audio_processor.py L72: ceil)."""
    return frame_count(num_samples_16k, float(exact_rate(fps)))

