"""LTX-2 memory modes: fp8 weight storage and block swapping keep the forward's numbers."""
from __future__ import annotations

import torch

from soundstage.models.just_dub_it.memory import BlockSwap, Fp8Linear, store_fp8, weight_bytes
from soundstage.models.just_dub_it.pipeline import DubbingContext, TextContext, dub_stage1
from soundstage.models.just_dub_it.tiny import random_native_checkpoint
from soundstage.models.just_dub_it.transformer import load_transformer


def _ctx():
    g = torch.Generator().manual_seed(0)
    ctx = DubbingContext(torch.randn(1, 128, 2, 2, 3, generator=g), torch.randn(1, 8, 5, 16, generator=g), 24.0)
    text = TextContext(torch.randn(1, 4, 24, generator=g), torch.randn(1, 4, 24, generator=g))
    return ctx, text


def test_fp8_storage_halves_block_weights_and_stays_close():
    sd, meta = random_native_checkpoint(seed=7)
    ref, fp8 = load_transformer(sd, meta), load_transformer(sd, meta)
    before = weight_bytes(fp8.transformer.transformer_blocks)
    n = store_fp8(fp8.transformer)
    assert n == len([m for m in ref.transformer.transformer_blocks.modules() if isinstance(m, torch.nn.Linear)])
    assert isinstance(fp8.transformer.transformer_blocks[0].attn1.to_q, Fp8Linear)
    assert weight_bytes(fp8.transformer.transformer_blocks) < 0.45 * before  # fp32 -> fp8 + row scales
    ctx, text = _ctx()
    want, _ = dub_stage1(ref, ctx, text, None, steps=2, seed=0)
    got, _ = dub_stage1(fp8, ctx, text, None, steps=2, seed=0)
    rel = (got - want).norm() / want.norm()
    assert 0 < rel < 0.05


def test_block_swap_moves_each_block_and_keeps_results():
    sd, meta = random_native_checkpoint(seed=8)
    model = load_transformer(sd, meta)
    ctx, text = _ctx()
    want, _ = dub_stage1(model, ctx, text, None, steps=2, seed=0)
    swap = BlockSwap(model.transformer.transformer_blocks, "cpu", resident=1)
    got, _ = dub_stage1(model, ctx, text, None, steps=2, seed=0)
    assert swap.moves == 2 * (len(model.transformer.transformer_blocks) - 1)
    swap.remove()
    torch.testing.assert_close(got, want)
