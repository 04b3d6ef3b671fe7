"""Next-token sampling for autoregressive token models: temperature, top-k, top-p, repetition
penalty. Generic over any model producing logits ``[B, V]``."""
from __future__ import annotations

import torch

NEG_INF = float("-inf")


def apply_repetition_penalty(logits: torch.Tensor, previous: torch.Tensor | None, penalty: float) -> torch.Tensor:
    """CTRL-style penalty (Keskar et al., 2019): logits of tokens already in ``previous`` [B, L] are
    divided by ``penalty`` when positive and multiplied when negative."""
    if previous is None or penalty == 1.0 or previous.numel() == 0:
        return logits
    picked = logits.gather(-1, previous)
    picked = torch.where(picked > 0, picked / penalty, picked * penalty)
    return logits.scatter(-1, previous, picked)


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits per row (``k <= 0`` keeps all)."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, NEG_INF)


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering: keep the smallest set of tokens whose probability mass reaches ``p``
    (the most likely token is always kept)."""
    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
    cum = sorted_logits.softmax(-1).cumsum(-1)
    # A token is dropped when the mass before it already reaches p.
    drop_sorted = (cum - sorted_logits.softmax(-1)) >= p
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, NEG_INF)


def sample_next(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    repetition_penalty: float = 1.0,
    previous: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """logits [B, V] -> token ids [B]. ``temperature <= 0`` is greedy."""
    logits = apply_repetition_penalty(logits.float(), previous, repetition_penalty)
    if temperature <= 0:
        return logits.argmax(-1)
    logits = top_p_filter(top_k_filter(logits / temperature, top_k), top_p)
    probs = logits.softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
