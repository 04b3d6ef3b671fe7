"""Autoregressive generation of the two token streams (background audio, speech) together.

With ``use_cache`` the aligner and the LM trunk each keep a cache and process one new position
per step; without it every step re-runs the full training-time forward (kept for checking and
benchmarking: both paths give the same tokens for the same seed).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..common.sampling import sample_next
from .aligner import AlignerCache
from .model import Conditions, DualDub

STREAMS_FOR_TASK = {"v2a": (True, False), "tts": (False, True), "v2st": (True, True)}


@dataclass
class SamplingOptions:
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    repetition_window: int = 50        # tokens of history the penalty looks at
    seed: int = 0
    min_steps: int = 0                 # EOS is not allowed before this many tokens


@dataclass
class Generated:
    audio: torch.Tensor    # [B, N] codes, PAD after the stream's end (all PAD if the task has no audio)
    speech: torch.Tensor   # [B, N]
    audio_lengths: torch.Tensor   # [B] tokens before EOS
    speech_lengths: torch.Tensor
    steps: int


def steps_for_duration(seconds: float, token_rate: float) -> int:
    """Tokens to cover ``seconds`` of audio (duration from the video x codec token rate)."""
    return max(1, int(round(seconds * token_rate)))


def _allowed_logits(logits: torch.Tensor, model: DualDub, eos_ok: bool) -> torch.Tensor:
    cfg = model.config
    logits = logits.clone()
    logits[..., cfg.pad_id] = float("-inf")
    logits[..., cfg.bos_id] = float("-inf")
    if not eos_ok:
        logits[..., cfg.eos_id] = float("-inf")
    return logits


def full_hidden(model: DualDub, cond: Conditions, audio_in: torch.Tensor, speech_in: torch.Tensor) -> torch.Tensor:
    """Trunk output at every stream position, by the training-time (full-sequence) path."""
    fused = model.aligner(model.audio_embed(audio_in), model.speech_embed(speech_in), model.video_memory(cond),
                          cond.video_mask)
    prefix, pmask = model.prefix(cond)
    mask = torch.cat([pmask, torch.ones(audio_in.shape, dtype=torch.bool, device=audio_in.device)], 1)
    return model.run_trunk(torch.cat([prefix, fused], 1), mask)[0][:, prefix.shape[1]:]


class IncrementalDecoder:
    """One new stream position per call, with the aligner cache and the trunk's KV cache."""

    def __init__(self, model: DualDub, cond: Conditions):
        from transformers import DynamicCache

        self.model = model
        self.prefix, self.pmask = model.prefix(cond)
        self.video = model.video_memory(cond)
        self.vmask = cond.video_mask
        self.aligner_cache = AlignerCache()
        self.kv = DynamicCache()
        self.mask = self.pmask
        self.next_pos = self.pmask.long().sum(-1, keepdim=True)

    def _fused(self, tokens: torch.Tensor) -> torch.Tensor:
        m = self.model
        return m.aligner(m.audio_embed(tokens[:, :1]), m.speech_embed(tokens[:, 1:]), self.video, self.vmask,
                         cache=self.aligner_cache)

    def start(self, tokens: torch.Tensor) -> torch.Tensor:
        """Prefill [speaker, text] plus the first stream inputs tokens [B, 2]; -> hidden [B, H]."""
        fused = self._fused(tokens)
        self.mask = torch.cat([self.pmask, torch.ones_like(self.pmask[:, :1])], 1)
        hidden, self.kv = self.model.run_trunk(torch.cat([self.prefix, fused], 1), self.mask, cache=self.kv)
        self.next_pos = self.next_pos + 1
        return hidden[:, -1]

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        fused = self._fused(tokens)
        self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], 1)
        hidden, self.kv = self.model.run_trunk(fused, self.mask, cache=self.kv, positions=self.next_pos)
        self.next_pos = self.next_pos + 1
        return hidden[:, -1]


@torch.no_grad()
def generate(
    model: DualDub,
    cond: Conditions,
    max_steps: int,
    *,
    task: str = "v2st",
    options: SamplingOptions | None = None,
    use_cache: bool = True,
    callback: Callable[[int, int], None] | None = None,
    prefix: torch.Tensor | None = None,
) -> Generated:
    """Up to ``max_steps`` new tokens of both streams. ``prefix`` [B, 2, P]: tokens already generated
    (the tail of the previous window of a long clip), fed after BOS as context and not returned."""
    if task not in STREAMS_FOR_TASK:
        raise ValueError(f"task must be one of {sorted(STREAMS_FOR_TASK)}, not {task!r}")
    opts = options or SamplingOptions()
    cfg = model.config
    device = cond.text_ids.device
    b = cond.batch
    active = torch.tensor(STREAMS_FOR_TASK[task], device=device)
    gen = torch.Generator(device=device).manual_seed(int(opts.seed))

    # finished[b, stream]: a stream absent from the task counts as finished from the start.
    finished = (~active)[None].expand(b, 2).clone()
    tokens = torch.full((b, 2, max_steps), cfg.pad_id, dtype=torch.long, device=device)
    lengths = torch.zeros(b, 2, dtype=torch.long, device=device)
    start = torch.where(active, cfg.bos_id, cfg.pad_id)[None].expand(b, 2)
    inputs = start[..., None].clone()  # [B, 2, L] every stream input so far

    decoder = IncrementalDecoder(model, cond) if use_cache else None
    if decoder is not None:
        hidden = decoder.start(inputs[..., 0])
    if prefix is not None and prefix.shape[-1]:
        prefix = prefix.to(device).expand(b, 2, -1)
        # An absent stream stays PAD, as it would have been fed during the previous window.
        prefix = torch.where(active[None, :, None], prefix, cfg.pad_id)
        inputs = torch.cat([inputs, prefix], dim=-1)
        if decoder is not None:
            for k in range(prefix.shape[-1]):
                hidden = decoder.step(prefix[..., k])

    steps = 0
    for step in range(max_steps):
        if decoder is None:
            hidden = full_hidden(model, cond, inputs[:, 0], inputs[:, 1])[:, -1]
        eos_ok = step >= opts.min_steps
        new = torch.empty(b, 2, dtype=torch.long, device=device)
        for si, head in enumerate((model.audio_head, model.speech_head)):
            history = tokens[:, si, max(0, step - opts.repetition_window):step] if opts.repetition_window else None
            new[:, si] = sample_next(
                _allowed_logits(head(hidden), model, eos_ok), temperature=opts.temperature, top_k=opts.top_k,
                top_p=opts.top_p, repetition_penalty=opts.repetition_penalty, previous=history, generator=gen,
            )
        new = torch.where(finished, cfg.pad_id, new)
        ended = (new == cfg.eos_id) & ~finished
        record = ~finished & ~ended
        tokens[:, :, step] = torch.where(record, new, cfg.pad_id)
        lengths += record.long()
        finished |= ended
        steps = step + 1
        if callback is not None:
            callback(steps, max_steps)
        if bool(finished.all()) or steps == max_steps:
            break
        feed = torch.where(finished & ~ended, cfg.pad_id, new)  # EOS itself is fed once, then PAD
        inputs = torch.cat([inputs, feed[..., None]], dim=-1)
        if decoder is not None:
            hidden = decoder.step(feed)
    return Generated(tokens[:, 0, :steps], tokens[:, 1, :steps], lengths[:, 0], lengths[:, 1], steps)
