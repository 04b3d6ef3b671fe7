"""Memory modes for the LTX-2 transformers (19B 2.0, 22B 2.3; issues 7 and 22): the shared fp8 storage
and block swap, wired to diffusers' ``transformer_blocks`` (one swap unit per block, driven by forward
hooks); and fp8 storage for the Gemma-3 12B text encoder, so encoding needs ~12 GiB instead of ~22.

fp8 layers keep LoRAs unmerged beside the weights (x A^T B^T), so stacking and unloading stay exact.
"""
from __future__ import annotations

import torch
from torch import nn

from ..common.block_swap import BlockSwap
from ..common.fp8 import Fp8Linear, linears_to_fp8_, tensor_bytes

__all__ = ["BlockSwap", "Fp8Linear", "estimate_gemma_bytes", "estimate_resident_bytes", "gemma_fp8_",
           "ltx2_block_swap", "resident_weight_bytes", "store_fp8", "weight_bytes"]

weight_bytes = tensor_bytes


def store_fp8(model: nn.Module, *, scope: str = "transformer_blocks", fp8_matmul: bool = False) -> int:
    """The linears under ``scope`` to fp8 storage (compute follows the input dtype); returns the count."""
    return linears_to_fp8_(model.get_submodule(scope), fp8_matmul=fp8_matmul)


def _diffusers_model(model: nn.Module) -> nn.Module:
    return getattr(model, "transformer", model)  # InContextTransformer wraps the diffusers model


def ltx2_block_swap(model: nn.Module, device: torch.device | str, resident: int = 0, *,
                    prefetch: bool = True, place: bool = True) -> BlockSwap:
    """A :class:`BlockSwap` over ``transformer_blocks`` hooked into their forwards."""
    # The whole module is placed (wrapper tensors included); only the diffusers blocks stream.
    swap = BlockSwap(model, list(_diffusers_model(model).transformer_blocks), device, resident, prefetch=prefetch)
    if place:
        swap.place()
    return swap.attach_hooks()


def resident_weight_bytes(model: nn.Module, resident: int | None = None) -> int:
    """Device weight bytes while sampling (everything, or with block swap: non-block weights,
    ``resident`` blocks and the two streamed in flight). Works on a meta-device model."""
    root = _diffusers_model(model)
    if resident is None:
        return tensor_bytes(root)
    return BlockSwap(root, list(root.transformer_blocks), "meta", resident).resident_bytes()


def estimate_resident_bytes(native_config: dict, *, fp8: bool, resident: int | None,
                            dtype: torch.dtype = torch.bfloat16) -> int:
    """Device weight bytes of the LTX-2 transformer at ``native_config`` in a memory mode, computed
    on the meta device (nothing allocated)."""
    from .config import diffusers_transformer_kwargs
    from .transformer import build_transformer

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # built in dtype: diffusers warns on a later .to(dtype)
    try:
        with torch.device("meta"):
            model = build_transformer(diffusers_transformer_kwargs(native_config))
    finally:
        torch.set_default_dtype(previous)
    if fp8:
        store_fp8(model)
    return resident_weight_bytes(model, resident)


# Gemma-3 12B's text tower (gemma-3-12b-it text_config; the vision tower is never loaded for LTX-2),
# so the text encoder's memory can be estimated without the files.
GEMMA3_12B_TEXT = dict(vocab_size=262208, hidden_size=3840, intermediate_size=15360, num_hidden_layers=48,
                       num_attention_heads=16, num_key_value_heads=8, head_dim=256)


def gemma_fp8_(model: nn.Module, *, fp8_matmul: bool = False) -> int:
    """Gemma-3's decoder-layer linears to fp8 storage (embeddings and norms stay); returns the count."""
    # Gemma3TextModel.layers, Gemma3ForCausalLM.model.layers, Gemma3Model.language_model.layers, ...
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and name.rpartition(".")[2] == "layers" and "vision" not in name:
            return linears_to_fp8_(module, fp8_matmul=fp8_matmul)
    raise ValueError(f"{type(model).__name__}: no decoder 'layers' to store in fp8")


def estimate_gemma_bytes(text_config: dict | None = None, *, fp8: bool, dtype: torch.dtype = torch.bfloat16) -> int:
    """Device weight bytes of the Gemma-3 text tower while it encodes (meta device, nothing allocated)."""
    from transformers import Gemma3TextConfig, Gemma3TextModel

    cfg = Gemma3TextConfig(**(text_config or GEMMA3_12B_TEXT))
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device("meta"):
            model = Gemma3TextModel(cfg)
    finally:
        torch.set_default_dtype(previous)
    if fp8:
        gemma_fp8_(model)
    return tensor_bytes(model)
