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
DEFAULT_WINDOW_SECONDS = 10.0  # the 10 s clips of the V2A sets DualDub trains on (VGGSound-style)
DEFAULT_CONTEXT_SECONDS = 1.0


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
    weight = next(model.speaker_encoder.parameters())  # the LM may sit in fp16 / bf16 (ComfyUI picks the precision)
    with torch.no_grad():
        emb = model.speaker_encoder(ref[None].to(weight.device, weight.dtype))
    return {"embedding": emb.float().cpu()}


def generate_tokens(model, tokenizer, text: dict, *, task: str = "v2st", duration: float = 0.0,
                    options: SamplingOptions = SamplingOptions(), allow_early_end: bool = False,
                    video: Optional[dict] = None, speaker: Optional[dict] = None,
                    callback: Optional[Callable] = None, node: str = "DualDub AR LM Sampler",
                    window_seconds: float = 0.0, context_seconds: float = DEFAULT_CONTEXT_SECONDS,
                    pause_guide: Optional[dict] = None) -> dict:
    """Both token streams on the model's device: {"audio", "speech", "*_length", "task", "seconds", "token_rate"}.

    Longer than ``window_seconds`` (> 0): generated window by window (:func:`generate_windows`)."""
    cfg = model.config
    if task in ("v2a", "v2st") and video is None:
        raise ValueError(f"{node}: input 'video_features': task {task} needs video features")
    seconds = duration if duration > 0 else (video["seconds"] if video is not None else 0.0)
    if seconds <= 0:
        raise ValueError(f"{node}: input 'duration': set a duration (there is no video to take it from)")
    steps = steps_for_duration(seconds, cfg.token_rate)
    if window_seconds > 0 and steps > steps_for_duration(window_seconds, cfg.token_rate):
        return generate_windows(model, tokenizer, text, task=task, seconds=seconds, options=options, video=video,
                                speaker=speaker, callback=callback, node=node, window_seconds=window_seconds,
                                context_seconds=context_seconds, pause_guide=pause_guide)
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


def _conditions(model, text_ids, task: str, video: Optional[dict], speaker: Optional[dict]):
    dev = next(model.parameters()).device
    use_speaker = speaker is not None and task != "v2a"  # paper 3.4: V2A uses a zero speaker
    has_video = video is not None and task != "tts" and video["features"].shape[0] > 0
    return model.conditions(
        text_ids=text_ids.to(dev),
        speaker=speaker["embedding"].to(dev) if use_speaker else None,
        video=video["features"].to(dev) if has_video else None,
        video_times=video["times"].to(dev) if has_video else None,
    )


def speech_activity(audio: dict, token_rate: float, tokens: int) -> torch.Tensor:
    """RMS of a guide track (e.g. the original dialogue) per codec token: where its pauses are."""
    rate = int(audio["sample_rate"])
    mono = audio["waveform"][0].float().mean(0)
    edges = [round(i * rate / token_rate) for i in range(tokens + 1)]
    return torch.stack([mono[a:b].pow(2).mean().sqrt() if b > a else mono.new_zeros(())
                        for a, b in zip(edges[:-1], edges[1:])])


def words_per_window(text: str, windows, activity: Optional[torch.Tensor], total: int) -> list[str]:
    """The transcript's whole words shared among the windows: each word goes to the window holding its
    estimated centre, the speaking time spread over the active tokens of the guide (all tokens without one)."""
    words = text.split()
    weight = torch.ones(total)
    if activity is not None and float(activity.max()) > 0:
        weight = (activity[:total] > 0.1 * activity.max()).float()
        if float(weight.sum()) == 0:
            weight = torch.ones(total)
    mass = torch.cumsum(weight, 0) / weight.sum()
    chars = torch.tensor([len(w) + 1 for w in words], dtype=torch.float64)
    centres = (torch.cumsum(chars, 0) - chars / 2) / chars.sum()
    out = [[] for _ in windows]
    for word, c in zip(words, centres.tolist()):
        token = min(int(torch.searchsorted(mass, torch.tensor(c, dtype=mass.dtype))), total - 1)
        out[next(i for i, w in enumerate(windows) if w.start <= token < w.end)].append(word)
    return [" ".join(w) for w in out]


def generate_windows(model, tokenizer, text: dict, *, task: str, seconds: float, options: SamplingOptions,
                     video: Optional[dict], speaker: Optional[dict], callback: Optional[Callable], node: str,
                     window_seconds: float, context_seconds: float, pause_guide: Optional[dict]) -> dict:
    """A long clip window by window. Windows (models/common/chunking.py) are at most ``window_seconds`` and
    end at the quietest token of ``pause_guide`` within the last third, so speech is not cut mid-word;
    each window continues both token streams from the previous window's last ``context_seconds`` of
    tokens (fed as context, not re-generated), sees the video frames of its span (times counted from its
    context's start) and speaks its share of the transcript's words. The same speaker embedding serves
    every window (window k samples with seed + k); the tokens join without overlap, so the length is
    exactly the one-pass length."""
    from ..models.common.chunking import plan_windows

    cfg = model.config
    total = steps_for_duration(seconds, cfg.token_rate)
    window = steps_for_duration(window_seconds, cfg.token_rate)
    ctx = min(int(round(context_seconds * cfg.token_rate)), window - 1)
    activity = speech_activity(pause_guide, cfg.token_rate, total) if pause_guide is not None else None
    windows = plan_windows(total, window, 0, activity=activity, tolerance=window // 3 if activity is not None else 0)
    if task == "v2a":
        lines = [V2A_PROMPT] * len(windows)
    else:
        lines = words_per_window(text["text"], windows, activity, total)
    dev = next(model.parameters()).device
    audio = torch.full((total,), cfg.pad_id, dtype=torch.long)
    speech = torch.full((total,), cfg.pad_id, dtype=torch.long)
    for k, w in enumerate(windows):
        c0 = max(0, w.start - ctx)
        t0 = c0 / cfg.token_rate
        part = None
        if video is not None:
            keep = (video["times"] >= t0) & (video["times"] < w.end / cfg.token_rate)
            part = {"features": video["features"][keep], "times": video["times"][keep] - t0}
        ids = encode_text(tokenizer, lines[k] or ".", cfg.text_vocab_size)  # a window without words: a pause
        cond = _conditions(model, ids, task, part, speaker)
        prefix = torch.stack([audio[c0:w.start], speech[c0:w.start]])[None].to(dev)
        done = w.start
        cb = None if callback is None else (lambda i, _n, done=done: callback(done + i, total))
        opts = replace(options, min_steps=w.length, seed=options.seed + k)  # no early EOS inside the clip
        out = generate(model, cond, w.length, task=task, options=opts, callback=cb, prefix=prefix)
        audio[w.start:w.start + out.steps] = out.audio[0].cpu()
        speech[w.start:w.start + out.steps] = out.speech[0].cpu()
    has_audio, has_speech = STREAMS_FOR_TASK[task]
    return {"audio": audio, "speech": speech, "audio_length": total if has_audio else 0,
            "speech_length": total if has_speech else 0, "task": task, "seconds": seconds,
            "token_rate": cfg.token_rate, "windows_s": [(w.start / cfg.token_rate, w.end / cfg.token_rate)
                                                        for w in windows]}
