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
    fp8.to(dtype=torch.bfloat16)  # device placement casts floating tensors; the fp8 bytes must survive
    assert fp8.transformer.transformer_blocks[0].attn1.to_q.weight_fp8.dtype == torch.uint8
    fp8.to(dtype=torch.float32)
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


def test_loras_on_fp8_layers_run_beside_the_weights_and_unload():
    from soundstage.models.just_dub_it.lora import lora_from_state_dict, loras_merged

    sd, meta = random_native_checkpoint(seed=9)
    ref, fp8 = load_transformer(sd, meta), load_transformer(sd, meta)
    store_fp8(fp8.transformer)
    g = torch.Generator().manual_seed(1)
    lora = lora_from_state_dict({
        "diffusion_model.transformer_blocks.0.attn1.to_q.lora_A.weight": 2 * torch.randn(2, 16, generator=g),
        "diffusion_model.transformer_blocks.0.attn1.to_q.lora_B.weight": 2 * torch.randn(16, 2, generator=g),
    })
    ctx, text = _ctx()
    base, _ = dub_stage1(fp8, ctx, text, None, steps=2, seed=0)
    with loras_merged(ref.transformer, [(lora, 0.5), (lora, 0.5)]):
        want, _ = dub_stage1(ref, ctx, text, None, steps=2, seed=0)
    with loras_merged(fp8.transformer, [(lora, 0.5), (lora, 0.5)]):
        assert len(fp8.transformer.transformer_blocks[0].attn1.to_q.loras) == 2
        got, _ = dub_stage1(fp8, ctx, text, None, steps=2, seed=0)
    assert fp8.transformer.transformer_blocks[0].attn1.to_q.loras == []
    # fp8 + unmerged LoRA tracks fp32 + merged LoRA closer than the LoRA moves the result.
    assert (got - want).norm() < 0.5 * (got - base).norm()
    after, _ = dub_stage1(fp8, ctx, text, None, steps=2, seed=0)
    torch.testing.assert_close(after, base)


def test_fp8_linear_adds_the_lora_delta_exactly():
    from soundstage.models.just_dub_it.lora import lora_from_state_dict, merge_lora, unmerge_lora

    g = torch.Generator().manual_seed(2)
    block = torch.nn.Sequential(torch.nn.Linear(16, 8))
    block[0].weight.data = torch.randn(8, 16, generator=g)
    holder = torch.nn.Module()
    holder.transformer_blocks = torch.nn.ModuleList([block])
    store_fp8(holder)
    layer = holder.transformer_blocks[0][0]
    a, b = torch.randn(2, 16, generator=g), torch.randn(8, 2, generator=g)
    merged = merge_lora(holder, lora_from_state_dict({"transformer_blocks.0.0.lora_A.weight": a,
                                                      "transformer_blocks.0.0.lora_B.weight": b}), 0.3)
    x = torch.randn(5, 16, generator=g)
    want = torch.nn.functional.linear(x, layer.dequantized(torch.float32) + 0.3 * b @ a, layer.bias)
    torch.testing.assert_close(layer(x), want, rtol=0, atol=1e-5)
    unmerge_lora(merged)
    torch.testing.assert_close(layer(x), torch.nn.functional.linear(x, layer.dequantized(torch.float32), layer.bias))
