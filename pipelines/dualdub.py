"""DualDub: silent video + transcript + reference voice -> background-audio and speech codec tokens together
(autoregressive LM with two heads over WavTokenizer codes), then waveforms. Plain tensors in and out."""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Optional

import torch

from ..media.mono import mono_at_rate
from ..models.dualdub.config import V2A_PROMPT
from ..models.dualdub.sampler import STREAMS_FOR_TASK, SamplingOptions, generate, steps_for_duration
from ..models.dualdub.preprocess import REFERENCE_SECONDS, FRAME_STRIDE, clip_frame_indices, clip_seconds, frame_times
from ..models.dualdub.speaker import reference_crop
from ..models.dualdub.text import encode_text
from ..models.dualdub.vision import encode_video

TASKS = tuple(STREAMS_FOR_TASK)


def video_features(clip_tower, frames: torch.Tensor, fps, node: str = "DualDub Video Encode") -> dict:
    """CLIP features of frames [T, H, W, 3] at ``fps`` (a Fraction stays exact): {"features", "times", "seconds"}."""
    if frames.shape[0] == 0 or float(fps) <= 0:
        raise ValueError(f"{node}: input 'video': the video has no frames")
    feats, _ = encode_video(clip_tower, frames, float(fps), stride=FRAME_STRIDE)
    # Exact timestamps and length at fractional rates (models/dualdub/preprocess.py, paper 3.2).
    times = frame_times(clip_frame_indices(frames.shape[0]), fps)
    return {"features": feats.cpu(), "times": times, "seconds": clip_seconds(frames.shape[0], fps)}


def speaker_reference(audio: dict, codec_rate: int, seconds: float = REFERENCE_SECONDS) -> torch.Tensor:
    """The speaker encoder's input (paper 3.2): the reference mono at the codec rate, its first ``seconds``."""
    return reference_crop(mono_at_rate(audio, codec_rate), int(codec_rate), seconds)


def text_ids(tokenizer, text: str, vocab_size: int, node: str = "DualDub Text Encode") -> dict:
    text = text.strip()
    if not text:
        raise ValueError(f"{node}: input 'text': enter the transcript to speak (V2A uses '{V2A_PROMPT}')")
    try:
        ids = encode_text(tokenizer, text, vocab_size)
    except ValueError as exc:
        raise ValueError(f"{node}: input 'text': {exc}") from exc
    return {"ids": ids, "text": text}


def speaker_embedding(model, audio: Optional[dict], seconds: float, node: str = "DualDub Speaker Prompt") -> dict:
    """The speaker embedding of a reference voice (core AUDIO), or zeros without one."""
    cfg = model.config
    if audio is None:
        return {"embedding": torch.zeros(1, cfg.speaker_dim)}
    wave = audio["waveform"]
    if wave.dim() != 3 or wave.shape[-1] == 0:
        raise ValueError(f"{node}: input 'reference': expected a non-empty AUDIO waveform [B, C, T]")
    ref = speaker_reference(audio, cfg.codec_sample_rate, seconds)
    device = next(model.parameters()).device
    with torch.no_grad():
        emb = model.speaker_encoder(ref[None].to(device))
    return {"embedding": emb.float().cpu()}


def generate_tokens(model, tokenizer, text: dict, *, task: str = "v2st", duration: float = 0.0,
                    options: SamplingOptions = SamplingOptions(), allow_early_end: bool = False,
                    video: Optional[dict] = None, speaker: Optional[dict] = None,
                    callback: Optional[Callable] = None, node: str = "DualDub AR LM Sampler") -> dict:
    """Both token streams on the model's device: {"audio", "speech", "*_length", "task", "seconds", "token_rate"}."""
    cfg = model.config
    if task in ("v2a", "v2st") and video is None:
        raise ValueError(f"{node}: input 'video_features': task {task} needs video features")
    seconds = duration if duration > 0 else (video["seconds"] if video is not None else 0.0)
    if seconds <= 0:
        raise ValueError(f"{node}: input 'duration': set a duration (there is no video to take it from)")
    steps = steps_for_duration(seconds, cfg.token_rate)
    if task == "v2a":  # paper 3.4: V2A is always prompted with this text
        text = {"ids": encode_text(tokenizer, V2A_PROMPT, cfg.text_vocab_size), "text": V2A_PROMPT}
    options = replace(options, min_steps=0 if allow_early_end else steps)
    dev = next(model.parameters()).device
    use_speaker = speaker is not None and task != "v2a"  # paper 3.4: V2A uses a zero speaker
    cond = model.conditions(
        text_ids=text["ids"].to(dev),
        speaker=speaker["embedding"].to(dev) if use_speaker else None,
        video=video["features"].to(dev) if video is not None and task != "tts" else None,
        video_times=video["times"].to(dev) if video is not None and task != "tts" else None,
    )
    out = generate(model, cond, steps, task=task, options=options, callback=callback)
    return {"audio": out.audio[0].cpu(), "speech": out.speech[0].cpu(),
            "audio_length": int(out.audio_lengths[0]), "speech_length": int(out.speech_lengths[0]),
            "task": task, "seconds": seconds, "token_rate": cfg.token_rate}


def decode_tokens(codec, tokens: dict, node: str = "DualDub Codec Decode") -> tuple[dict, dict]:
    """Both streams -> two AUDIO dicts of the same length (a stream that ended early, or that the task
    does not produce, is silence after its last token)."""
    device = next(codec.parameters()).device
    with torch.no_grad():
        rate = codec.sample_rate
        total = max(int(round(tokens["seconds"] * rate)), 1)
        tracks = []
        for name in ("audio", "speech"):
            n = tokens[f"{name}_length"]
            wave = torch.zeros(total)
            if n > 0:
                codes = tokens[name][:n].to(device)
                if int(codes.max()) >= codec.codebook_size:
                    raise ValueError(f"{node}: input 'tokens': {name} codes exceed the codec's codebook")
                decoded = codec.decode_codes(codes[None]).float().cpu()[0]
                wave[: min(total, decoded.shape[-1])] = decoded[:total]
            tracks.append({"waveform": wave.view(1, 1, -1).contiguous(), "sample_rate": rate})
    return tracks[0], tracks[1]
