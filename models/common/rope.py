"""The rotary frequencies every system shares: ``1 / theta^(2i / dim)`` (RoFormer), in the dtype its
reference computes them.

What differs is each reference's layout, kept beside its network because the checkpoints were trained
with it (changing one would change its numerics against the golden fixtures):
- Ovi (``models/ovi/rope.py``, Wan): float64 angles; a head split t : h : w = (d - 4*(d//6)) : 2*(d//6) :
  2*(d//6); interleaved pairs; the audio tower rotates its temporal band only, scaled 31/157.
- MTV (``models/mtv/rope.py``, CogVideoX/SAT): float32; t : h : w = 1/4 : 3/8 : 3/8; each frequency
  repeated pairwise and applied with SAT's ``rotate_half``.
- AudioGen-Omni / MMAudio (``models/audiogen_omni/paapi.py``): 1-D, float32 2x2 rotation matrices, each
  stream's frequencies scaled to the audio-latent timeline (PAAPI, paper 3.4).
"""
from __future__ import annotations

import torch


def inverse_frequencies(dim: int, *, theta: float = 10000.0, dtype: torch.dtype = torch.float32,
                        device=None) -> torch.Tensor:
    """``[dim // 2]`` rotary frequencies of a ``dim``-channel band (an odd band's last channel is not
    rotated, as CogVideoX's SAT code does)."""
    return 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=dtype, device=device)[: dim // 2] / dim))
