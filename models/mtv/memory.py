"""fp8 weight storage for the MTV backbone, with the layers shared with Ovi and LTX-2 (models/common/fp8).

The 42 CogVideoX blocks hold most of the resident weights and most of a step's matmul FLOPs; the
MST-ControlNet modules, embeddings and output head stay in the compute dtype. With ``fp8_matmul``
the block linears also quantise their activations per call and run an fp8 GEMM where the GPU has
one (Ada/Hopper), which is what a 50-step 49x480x720 run needs to approach the issue's 60 s
(``benchmarks/roofline.py``: bf16 alone would have to sustain 82 % of peak).
"""
from __future__ import annotations

from torch import nn

from ..common.fp8 import linears_to_fp8_


def store_fp8(model: nn.Module, *, fp8_matmul: bool = False) -> int:
    """The backbone blocks' linears to per-tensor-scaled e4m3 storage in place; returns the count."""
    return linears_to_fp8_(model.backbone.transformer_blocks, fp8_matmul=fp8_matmul)
