"""IMAGE batches ([B, H, W, C] floats in 0..1) resized and cropped the same way for every model's inputs."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def resize_images(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Exactly ``height`` x ``width``: antialiased bilinear, so downscaled keyframes do not alias."""
    x = images.float().permute(0, 3, 1, 2)
    x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return x.permute(0, 2, 3, 1).clamp(0, 1)


def center_crop_to_aspect(images: torch.Tensor, aspect: float) -> torch.Tensor:
    """The largest centred window with width / height == ``aspect`` (rounded to whole pixels)."""
    h, w = images.shape[1:3]
    if w / h > aspect:
        nw = max(1, round(h * aspect))
        return images[:, :, (w - nw) // 2:(w - nw) // 2 + nw]
    nh = max(1, round(w / aspect))
    return images[:, (h - nh) // 2:(h - nh) // 2 + nh]
