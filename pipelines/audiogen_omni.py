"""AudioGen-Omni / MMAudio: video and/or text/lyrics -> audio latent (MMDiT, conditional flow matching).

Plain tensors in and out; the mel VAE and vocoder (``models/common/codecs``) turn the latent into a waveform.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Optional

import torch

from ..models.audiogen_omni.mmdit import SYNC_TOKENS_PER_SEGMENT, MMDiT
from ..models.audiogen_omni.preprocess import CLIP_FPS, SYNC_FPS, SYNC_SEGMENT, SYNC_STRIDE, clip_seq_len, sync_seq_len
from ..models.audiogen_omni.sampler import DEFAULT_CFG, DEFAULT_STEPS, generate, initial_noise
from ..models.common.chunking import Window, overlap_add, plan_windows

TASKS = ["audio", "speech", "song"]
MIN_SYNC_SECONDS = SYNC_SEGMENT / SYNC_FPS  # one Synchformer segment
# Windows start on whole Synchformer strides (8 frames at 25 fps = 0.32 s): the sync tokens of a window
# are then exactly the whole clip's tokens from that stride on, so slicing shifts no timing.
WINDOW_GRID = Fraction(SYNC_STRIDE) / Fraction(SYNC_FPS).limit_denominator()
DEFAULT_WINDOW_SECONDS = 8.0  # MMAudio's training clip length (sequence_config.py, 8 s)
DEFAULT_OVERLAP_SECONDS = 1.0


def check_visual_input(images: Optional[torch.Tensor], fps: float, needs_sync: bool, node: str = "MMDiT Visual Features"):
    if images is None or images.dim() != 4 or images.shape[0] == 0:
        raise ValueError(f"{node}: input 'video'/'images' holds no frames")
    if fps <= 0:
        raise ValueError(f"{node}: input 'fps' must be positive")
    length = images.shape[0] / fps
    if needs_sync and length < MIN_SYNC_SECONDS:
        raise ValueError(f"{node}: input 'video'/'images' lasts {length:.2f} s; Synchformer needs at least 0.64 s "
                         "(16 frames at 25 fps)")


def crop_visual(visual: dict, duration: float, clip_dim: int, sync_dim: int, node: str = "MMDiT Sampler"):
    """CLIP and Synchformer features cut to ``duration`` seconds: (clip [B, n, D] or None, sync or None)."""
    clip_f = sync_f = None
    if visual.get("clip") is not None:
        clip_f = visual["clip"][:, : max(1, clip_seq_len(duration))]
        if clip_f.shape[-1] != clip_dim:
            raise ValueError(f"{node}: input 'visual_features': CLIP features are {clip_f.shape[-1]}-d, the model "
                             f"expects {clip_dim}-d")
    if visual.get("sync") is not None:
        # Keep the 16-frame/stride-8 segments inside the requested duration (8 tokens each).
        sync_f = visual["sync"][:, : max(SYNC_TOKENS_PER_SEGMENT, sync_seq_len(duration))]
        if sync_f.shape[-1] != sync_dim:
            raise ValueError(f"{node}: input 'visual_features': Synchformer features are {sync_f.shape[-1]}-d, the "
                             f"model expects {sync_dim}-d")
    return clip_f, sync_f


def generate_latent(net: MMDiT, *, task: str = "audio", duration: float = 0.0, steps: int = DEFAULT_STEPS,
                    cfg: float = DEFAULT_CFG, seed: int = 0, variations: int = 1, visual: Optional[dict] = None,
                    text: Optional[dict] = None, lyrics: Optional[dict] = None, cuda_graph: bool = False,
                    callback: Optional[Callable] = None, preset: str = "this", node: str = "MMDiT Sampler",
                    window_seconds: float = 0.0, overlap_seconds: float = DEFAULT_OVERLAP_SECONDS):
    """Sample an MMDiT on its device; returns (latent [B, C, T] float on CPU, duration in seconds).

    A ``duration`` longer than ``window_seconds`` (> 0) is sampled in overlapping windows
    (:func:`mmdit_windows`) joined by a crossfade; 0 samples it in one pass.

    ``visual``: {"clip", "sync", "duration_s"}; ``text``: {"features", "mask", "negative", "negative_mask"};
    ``lyrics``: {"ids"} (the shapes the encode functions of this module's callers return).
    """
    if task not in TASKS:
        raise ValueError(f"{node}: input 'task' must be one of {TASKS}")
    if duration <= 0:
        if visual is None:
            raise ValueError(f"{node}: input 'duration' must be > 0 when no visual features are connected")
        duration = visual["duration_s"]
    if visual is not None:
        duration = min(duration, visual["duration_s"])
    cfgm = net.config
    if task in ("speech", "song") and lyrics is None:
        raise ValueError(f"{node}: task '{task}' needs the 'lyrics' input (a transcript or lyrics)")
    if lyrics is not None and task == "audio":
        lyrics = None  # general audio: the lyrics stream stays at its learned empty feature
    if lyrics is not None and not cfgm.lyrics_vocab:
        raise ValueError(f"{node}: input 'lyrics': this {preset} model has no lyrics/transcript stream "
                         "(MMAudio checkpoints generate general audio only; use task 'audio')")
    if lyrics is not None and int(lyrics["ids"].max()) >= cfgm.lyrics_vocab:
        raise ValueError(f"{node}: input 'lyrics': token ids exceed the model's vocabulary ({cfgm.lyrics_vocab}); "
                         "use the tokenizer the model was trained with")
    clip_f, sync_f = crop_visual(visual, duration, cfgm.clip_dim, cfgm.sync_dim, node) if visual is not None \
        else (None, None)
    n = net.latent_len_for(duration)
    text_f = text_mask = neg = neg_mask = None
    if text is not None:
        text_f, text_mask, neg, neg_mask = text["features"], text["mask"], text["negative"], text["negative_mask"]
        width = (text_f if text_f is not None else neg).shape[-1] if (text_f is not None or neg is not None) else cfgm.text_dim
        if width != cfgm.text_dim:
            raise ValueError(f"{node}: input 'text': features are {width}-d, the model expects {cfgm.text_dim}-d "
                             f"({'T5' if cfgm.lyrics_dim else 'CLIP'} text for this model)")
    lyrics_ids = lyrics["ids"] if lyrics is not None else None
    to = lambda x: None if x is None else x.to(net.latent_mean.device)  # noqa: E731

    def sample_window(w: "MMDiTWindow", cb: Optional[Callable]) -> torch.Tensor:
        with torch.no_grad():
            lyrics_f = lyrics_mask = None
            if w.lyrics_ids is not None:
                ids = torch.zeros(1, w.latent_len, dtype=torch.long)
                seq = w.lyrics_ids[: w.latent_len]
                ids[0, : len(seq)] = seq  # padded to the frame budget (paper 3.2)
                lyrics_f, lyrics_mask = net.encode_lyrics(to(ids))
            res = generate(net, duration_s=w.duration_s, seed=seed, variations=variations, num_steps=steps,
                           cfg_scale=cfg, clip_f=to(w.clip), sync_f=to(w.sync), text_f=to(text_f),
                           text_mask=to(text_mask), negative_text_f=to(neg), negative_text_mask=to(neg_mask),
                           lyrics_f=lyrics_f, lyrics_mask=lyrics_mask, callback=cb, cuda_graph=cuda_graph,
                           noise=w.noise, latent_len=w.latent_len)
        return res.latent

    if window_seconds <= 0 or duration <= window_seconds:
        whole = MMDiTWindow(0.0, duration, 0, n, clip_f, sync_f, lyrics_ids, None)
        return sample_window(whole, callback).transpose(1, 2).float().cpu(), duration
    windows = mmdit_windows(net, duration, window_seconds, overlap_seconds, clip_f, sync_f, lyrics_ids,
                            initial_noise(variations, n + 2, cfgm.latent_dim, seed), node)
    latent = windowed_latent(windows, n, sample_window, steps, callback)
    return latent.transpose(1, 2).float().cpu(), duration


@dataclass
class MMDiTWindow:
    """One window's share of a long clip: where it starts and the conditioning sliced for it."""
    start_s: float
    duration_s: float
    latent_start: int  # first latent frame in the whole clip
    latent_len: int
    clip: Optional[torch.Tensor]  # [1, n, D] CLIP features of the window (8 fps)
    sync: Optional[torch.Tensor]  # [1, n, D] Synchformer tokens of the window (its whole segments)
    lyrics_ids: Optional[torch.Tensor]  # the window's share of the transcript/lyrics ids
    noise: Optional[torch.Tensor]  # [B, latent_len, C] its slice of the whole clip's noise


def mmdit_windows(net: MMDiT, duration: float, window_seconds: float, overlap_seconds: float,
                  clip_f: Optional[torch.Tensor], sync_f: Optional[torch.Tensor], lyrics_ids: Optional[torch.Tensor],
                  noise: Optional[torch.Tensor], node: str = "MMDiT Sampler") -> list[MMDiTWindow]:
    """Windows of at most ``window_seconds`` on the 0.32 s Synchformer grid, sharing ``overlap_seconds``.

    Each window takes the CLIP frames and Synchformer tokens of its own time span (CLIP's 8 fps start
    frame is the nearest to the window start), the text prompt whole, and the lyrics ids in proportion to
    its time span. The latent offset is the window start at the latent rate (exact at 16 kHz, within half
    a latent frame, 11.6 ms, at 44.1 kHz).
    """
    grid = float(WINDOW_GRID)
    units = lambda s: int(round(s / grid))  # noqa: E731
    window, overlap = units(window_seconds), units(overlap_seconds)
    if window < 2 or overlap < 1 or 2 * overlap > window:
        raise ValueError(f"{node}: inputs 'window_seconds'/'overlap_seconds': need 0 < overlap <= window / 2, each a "
                         f"multiple of {grid} s (got {window_seconds} and {overlap_seconds})")
    total = int(-(-Fraction(duration).limit_denominator(10 ** 6) // WINDOW_GRID))
    cfg = net.config
    latent_rate = Fraction(cfg.sample_rate, cfg.samples_per_latent)
    n_total = net.latent_len_for(duration)
    out = []
    for w in plan_windows(total, window, overlap):
        start = w.start * WINDOW_GRID
        seconds = float(min(w.end * WINDOW_GRID, Fraction(duration).limit_denominator(10 ** 6)) - start)
        ls = int(round(start * latent_rate))
        n = net.latent_len_for(seconds) if w.end < total else max(net.latent_len_for(seconds), n_total - ls)
        clip = sync = ids = None
        if clip_f is not None:
            c0 = min(int(round(start * Fraction(int(CLIP_FPS)))), clip_f.shape[1] - 1)
            clip = clip_f[:, c0: c0 + max(1, clip_seq_len(seconds))]
        if sync_f is not None:
            s0 = min(w.start * SYNC_TOKENS_PER_SEGMENT, max(0, sync_f.shape[1] - SYNC_TOKENS_PER_SEGMENT))
            sync = sync_f[:, s0: s0 + max(SYNC_TOKENS_PER_SEGMENT, sync_seq_len(seconds))]
        if lyrics_ids is not None:
            a, b = (int(round(len(lyrics_ids) * float(x) / duration)) for x in (start, start + Fraction(seconds)))
            ids = lyrics_ids[a: max(b, a + 1)]
        out.append(MMDiTWindow(float(start), seconds, ls, n, clip, sync, ids,
                               None if noise is None else noise[:, ls: ls + n]))
    return out


def windowed_latent(windows: list[MMDiTWindow], latent_len: int,
                    sample_window: Callable[[MMDiTWindow, Optional[Callable]], torch.Tensor], steps: int,
                    callback: Optional[Callable] = None) -> torch.Tensor:
    """Each window sampled by ``sample_window(window, callback) -> latent [B, n, C]``, then joined with
    a linear crossfade over the overlaps ([B, latent_len, C]). Linear, not equal-power: the windows share
    noise and conditioning there, so their latents are correlated and linear weights keep the level."""
    chunks = []
    total = len(windows) * steps
    for k, w in enumerate(windows):
        done = k * steps
        cb = None if callback is None else (lambda i, _n, done=done: callback(done + i, total))
        chunks.append(sample_window(w, cb).float())
    return overlap_add(chunks, [w.latent_start for w in windows], latent_len, dim=1, curve="linear")
