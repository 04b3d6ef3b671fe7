"""Template-browser thumbnails: a video frame, a spectrogram of the audio, and a caption on one square card.

Plain functions over numpy arrays and Pillow; `headless/thumbnails.py` feeds them a workflow's real output
(or, for a workflow that needs released weights, its sample input and what it needs).
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

CARD = 384  # square: the Templates dialog shows thumbnails in square tiles
FRAME_H = 200  # picture band on top
SPEC_H = 72  # spectrogram band under it; the caption below gets 5 lines
MAX_BYTES = 100_000  # thumbnails ship with the pack: keep each small
BACKGROUND = (18, 20, 26)
TEXT = (235, 235, 240)
MUTED = (150, 155, 170)
# dark blue -> purple -> orange -> pale yellow (a perceptual "magma"-like ramp), for log magnitude 0..1
RAMP = np.array([(0, 0, 4), (40, 11, 84), (101, 21, 110), (159, 42, 99), (212, 72, 66), (245, 125, 21),
                 (250, 193, 39), (252, 255, 164)], dtype=np.float64)
TOP_DB = 70.0  # spectrogram dynamic range below its peak


def spectrogram(wave: np.ndarray, sample_rate: int, width: int, height: int, n_fft: int = 1024) -> np.ndarray:
    """Log-magnitude STFT of a mono wave as an RGB image [height, width, 3] uint8: time left to right,
    frequency 0..min(sr/2, 12 kHz) bottom to top, colour = dB below the clip's peak (``TOP_DB`` range)."""
    wave = np.asarray(wave, dtype=np.float64).reshape(-1)
    if wave.size < n_fft:
        wave = np.pad(wave, (0, n_fft - wave.size))
    hop = max(1, (wave.size - n_fft) // max(1, width - 1))
    starts = np.arange(0, wave.size - n_fft + 1, hop)[:width]
    frames = np.stack([wave[s:s + n_fft] for s in starts]) * np.hanning(n_fft)
    mag = np.abs(np.fft.rfft(frames, axis=1)).T  # [bins, frames]
    top_bin = min(mag.shape[0], int(round(min(sample_rate / 2, 12_000) / (sample_rate / n_fft))) + 1)
    db = 20 * np.log10(mag[:top_bin] + 1e-9)
    level = np.clip((db - (db.max() - TOP_DB)) / TOP_DB, 0.0, 1.0)
    img = _ramp(level[::-1])  # low frequencies at the bottom
    return np.asarray(Image.fromarray(img).resize((width, height), Image.BILINEAR))


def _ramp(level: np.ndarray) -> np.ndarray:
    pos = level * (len(RAMP) - 1)
    lo = np.floor(pos).astype(int).clip(0, len(RAMP) - 2)
    frac = (pos - lo)[..., None]
    return (RAMP[lo] * (1 - frac) + RAMP[lo + 1] * frac).astype(np.uint8)


def _fit(frame: np.ndarray, width: int, height: int) -> Image.Image:
    """An RGB frame (float 0..1 or uint8) letterboxed into width x height."""
    arr = np.asarray(frame)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0.0, 1.0) * 255).round().astype(np.uint8)
    img = Image.fromarray(arr[..., :3])
    scale = min(width / img.width, height / img.height)
    img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.LANCZOS)
    box = Image.new("RGB", (width, height), (0, 0, 0))
    box.paste(img, ((width - img.width) // 2, (height - img.height) // 2))
    return box


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one bitmap size only
        return ImageFont.load_default()


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if draw.textlength(trial, font=font) <= width or not line:
            line = trial
        else:
            lines.append(line)
            line = word
    return lines + ([line] if line else [])


def _label(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str) -> None:
    font = _font(12)
    x, y = xy
    w = draw.textlength(text, font=font)
    draw.rectangle((x, y, x + w + 8, y + 17), fill=(0, 0, 0))
    draw.text((x + 4, y + 2), text, font=font, fill=TEXT)


def render_card(title: str, caption: str, *, frame: np.ndarray | None = None,
                audio: tuple[np.ndarray, int] | None = None, frame_label: str = "", audio_label: str = "") -> Image.Image:
    """The card: ``frame`` (letterboxed) on top, the spectrogram of ``audio`` (mono wave, rate) below it,
    ``title`` and a wrapped ``caption`` at the bottom. A missing audio leaves its band dark; a missing frame
    leaves ``frame_label`` written large in its band."""
    card = Image.new("RGB", (CARD, CARD), BACKGROUND)
    draw = ImageDraw.Draw(card)
    if frame is not None:
        card.paste(_fit(frame, CARD, FRAME_H), (0, 0))
        if frame_label:  # bottom right: the dialog puts its own badge on the top left
            _label(draw, (CARD - 14 - int(draw.textlength(frame_label, font=_font(12))), FRAME_H - 23), frame_label)
    elif frame_label:  # no picture: the band names what stands in for it
        big = _font(26)
        for i, line in enumerate(_wrap(draw, frame_label, big, CARD - 40)[:3]):
            draw.text((20, 60 + 34 * i), line, font=big, fill=MUTED)
    if audio is not None:
        card.paste(Image.fromarray(spectrogram(audio[0], audio[1], CARD, SPEC_H)), (0, FRAME_H))
        if audio_label:
            _label(draw, (6, FRAME_H + 6), audio_label)
    y = FRAME_H + SPEC_H + 8
    title_font, caption_font = _font(15), _font(12)
    draw.text((8, y), _wrap(draw, title, title_font, CARD - 16)[0], font=title_font, fill=TEXT)
    for i, line in enumerate(_wrap(draw, caption, caption_font, CARD - 16)[:5]):
        draw.text((8, y + 22 + 15 * i), line, font=caption_font, fill=MUTED)
    return card


def save_jpeg(card: Image.Image, path: str | Path, max_bytes: int = MAX_BYTES) -> Path:
    """Write ``card`` as a JPEG under ``max_bytes`` (quality lowered until it fits); returns the path."""
    for quality in (88, 80, 72, 64, 56, 48):
        buf = io.BytesIO()
        card.save(buf, "JPEG", quality=quality, optimize=True)
        if buf.tell() <= max_bytes:
            break
    path = Path(path)
    path.write_bytes(buf.getvalue())
    return path
