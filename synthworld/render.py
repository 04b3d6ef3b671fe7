"""Frames of the synthetic world, drawn with numpy masks (no graphics dependency)."""
from __future__ import annotations

import numpy as np

SKIN = np.array([238, 198, 160], np.float32)
DARK = np.array([40, 30, 30], np.float32)
MOUTH = np.array([150, 30, 40], np.float32)


class Canvas:
    def __init__(self, height: int, width: int):
        self.h, self.w = height, width
        self.yy, self.xx = np.mgrid[0:height, 0:width].astype(np.float32)

    def ellipse(self, img, cx, cy, rx, ry, colour):
        m = ((self.xx - cx) / max(rx, 0.5)) ** 2 + ((self.yy - cy) / max(ry, 0.5)) ** 2 <= 1.0
        img[m] = colour

    def rect(self, img, x0, y0, x1, y1, colour):
        img[int(y0): int(y1), int(x0): int(x1)] = colour


def draw_frame(
    canvas: Canvas, *, mood: float, openness: float, head_dx: float, head_dy: float, profile: bool,
    balls: list[tuple[float, float, float, tuple[int, int, int]]], light_on: bool,
) -> np.ndarray:
    h, w = canvas.h, canvas.w
    s = min(h, w)
    bg = np.array([60 + 120 * mood, 70 + 90 * mood, 140 - 60 * mood], np.float32)
    img = np.empty((h, w, 3), np.float32)
    img[:] = bg
    floor = 0.92 * h
    canvas.rect(img, 0, floor, w, h, np.array([90, 70, 50], np.float32))
    # face
    cx, cy, r = (0.3 + head_dx) * w, (0.42 + head_dy) * h, 0.2 * s
    canvas.ellipse(img, cx, cy, r, r * 1.1, SKIN)
    mouth_h = 0.01 * s + 0.09 * s * openness
    if profile:  # side view: one eye, mouth at the edge of the face
        canvas.ellipse(img, cx + 0.45 * r, cy - 0.3 * r, 0.09 * r, 0.09 * r, DARK)
        canvas.ellipse(img, cx + 0.75 * r, cy + 0.45 * r, 0.2 * r, mouth_h / 2, MOUTH)
        canvas.ellipse(img, cx + 1.0 * r, cy, 0.12 * r, 0.18 * r, SKIN)  # nose
    else:
        for ex in (-0.38, 0.38):
            canvas.ellipse(img, cx + ex * r, cy - 0.3 * r, 0.1 * r, 0.1 * r, DARK)
        canvas.ellipse(img, cx, cy + 0.45 * r, 0.38 * r, mouth_h / 2, MOUTH)
    # balls (x in 0..1 of the width, height above the floor in frame heights)
    for x, height, radius, colour in balls:
        rad = radius * h
        canvas.ellipse(img, x * w, floor - height * h - rad, rad, rad, np.array(colour, np.float32))
    # blinking light, top right
    lamp = np.array([255, 240, 80] if light_on else [70, 70, 60], np.float32)
    canvas.ellipse(img, 0.88 * w, 0.1 * h, 0.05 * s, 0.05 * s, lamp)
    return img.clip(0, 255).astype(np.uint8)
