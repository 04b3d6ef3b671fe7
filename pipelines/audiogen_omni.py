"""AudioGen-Omni / MMAudio: video and/or text/lyrics -> audio latent (MMDiT, conditional flow matching).

Plain tensors in and out; the mel VAE and vocoder (``models/common/codecs``) turn the latent into a waveform.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

from ..models.audiogen_omni.mmdit import SYNC_TOKENS_PER_SEGMENT, MMDiT
from ..models.audiogen_omni.preprocess import SYNC_FPS, SYNC_SEGMENT, clip_seq_len, sync_seq_len
from ..models.audiogen_omni.sampler import DEFAULT_CFG, DEFAULT_STEPS, generate

TASKS = ["audio", "speech", "song"]
MIN_SYNC_SECONDS = SYNC_SEGMENT / SYNC_FPS  # one Synchformer segment


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
                    callback: Optional[Callable] = None, preset: str = "this", node: str = "MMDiT Sampler"):
    """Sample an MMDiT on its device; returns (latent [B, C, T] float on CPU, duration in seconds).

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
    with torch.no_grad():
        dev = net.latent_mean.device
        lyrics_f = lyrics_mask = None
        if lyrics is not None:
            ids = torch.zeros(1, n, dtype=torch.long)
            seq = lyrics["ids"][:n]
            ids[0, : len(seq)] = seq  # padded to the frame budget (paper 3.2)
            lyrics_f, lyrics_mask = net.encode_lyrics(ids.to(dev))
        to = lambda x: None if x is None else x.to(dev)  # noqa: E731
        res = generate(net, duration_s=duration, seed=seed, variations=variations, num_steps=steps, cfg_scale=cfg,
                       clip_f=to(clip_f), sync_f=to(sync_f), text_f=to(text_f), text_mask=to(text_mask),
                       negative_text_f=to(neg), negative_text_mask=to(neg_mask),
                       lyrics_f=lyrics_f, lyrics_mask=lyrics_mask, callback=callback, cuda_graph=cuda_graph)
    return res.latent.transpose(1, 2).float().cpu(), duration
