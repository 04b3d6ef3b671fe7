"""IMAGE resize/crop helpers shared by the model input nodes."""
from __future__ import annotations

import torch

from soundstage.models.common.images import center_crop_to_aspect, resize_images


def test_resize_is_exact_size_antialiased_and_clamped():
    img = torch.zeros(1, 8, 8, 3)
    img[:, ::2] = 1.0  # one-pixel stripes: plain bilinear at 1/4 scale would alias to all 0 or all 1
    out = resize_images(img, 2, 4)
    assert out.shape == (1, 2, 4, 3) and out.dtype == torch.float32
    torch.testing.assert_close(out, torch.full_like(out, 0.5), atol=0.05, rtol=0)
    assert resize_images(torch.full((1, 3, 3, 3), 1.0, dtype=torch.float16), 5, 5).max() <= 1.0


def test_center_crop_keeps_the_middle_at_the_asked_aspect():
    img = torch.arange(6 * 12, dtype=torch.float32).reshape(1, 6, 12, 1)
    wide = center_crop_to_aspect(img, 1.0)
    assert wide.shape == (1, 6, 6, 1) and wide[0, 0, 0, 0] == 3  # columns 3..8
    tall = center_crop_to_aspect(img.transpose(1, 2), 1.0)
    assert tall.shape == (1, 6, 6, 1) and tall[0, :, 0, 0].tolist() == [3, 4, 5, 6, 7, 8]  # rows 3..8
