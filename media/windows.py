"""O(N) sliding-window minimum and mean over 1-D tensors (kernels of thousands of samples are common
in limiters and envelope followers, where pooling ops cost O(N * kernel))."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def sliding_min(x: torch.Tensor, k: int) -> torch.Tensor:
    """y[i] = min(x[i : i + k]) for i in 0 .. len(x) - k (van Herk / Gil-Werman block prefix minima)."""
    n = x.shape[0]
    if k <= 1:
        return x.clone()
    if n < k:
        return x.new_empty(0)
    blocks = -(-n // k)
    padded = F.pad(x, (0, blocks * k - n), value=float("inf")).view(blocks, k)
    prefix = padded.cummin(dim=1).values.reshape(-1)
    suffix = padded.flip(1).cummin(dim=1).values.flip(1).reshape(-1)
    count = n - k + 1
    return torch.minimum(suffix[:count], prefix[k - 1:k - 1 + count])


def sliding_mean(x: torch.Tensor, k: int, positions: torch.Tensor | None = None) -> torch.Tensor:
    """y[i] = mean(x[i : i + k]) for i in 0 .. len(x) - k (or only at ``positions``), via a float64 cumsum."""
    csum = F.pad(torch.cumsum(x.to(torch.float64), dim=0), (1, 0))
    starts = positions if positions is not None else torch.arange(x.shape[0] - k + 1)
    return ((csum[starts + k] - csum[starts]) / k).to(x.dtype)
