"""LTX-2 on the shared memory modes: fp8 weight storage and block swapping keep the forward's numbers."""
from __future__ import annotations

import torch

import json

from soundstage.models.just_dub_it.memory import (Fp8Linear, estimate_resident_bytes, ltx2_block_swap, store_fp8,
                                                 weight_bytes)
from soundstage.pipelines.just_dub_it import DubbingContext, TextContext, dub_stage1
from soundstage.testing.just_dub_it import random_native_checkpoint
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
    assert weight_bytes(fp8.transformer.transformer_blocks) < 0.45 * before  # fp32 -> fp8 + fp32 biases
    fp8.to(dtype=torch.bfloat16)  # device placement casts floating tensors; the fp8 bytes must survive
    assert fp8.transformer.transformer_blocks[0].attn1.to_q.weight.dtype == torch.float8_e4m3fn
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
    swap = ltx2_block_swap(model, "cpu", resident=1)
    got, _ = dub_stage1(model, ctx, text, None, steps=2, seed=0)
    streamed = len(model.transformer.transformer_blocks) - 1
    assert swap.loads == 2 * streamed and swap.prefetched == 2 * streamed  # 2 steps, each block prefetched
    swap.detach_hooks()
    assert torch.equal(got, want)  # streaming changes where weights live, never the numbers
    dub_stage1(model, ctx, text, None, steps=1, seed=0)
    assert swap.loads == 2 * streamed


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

    # Beside a streamed (CPU-stored) layer the pair lives on the compute device, not copied in per call;
    # the same LoRA stacked twice at one strength unmerges entry by entry.
    lora = lora_from_state_dict({"transformer_blocks.0.0.lora_A.weight": a, "transformer_blocks.0.0.lora_B.weight": b})
    first, second = merge_lora(holder, lora, 0.3, device="meta"), merge_lora(holder, lora, 0.3)
    assert [e[0].device.type for e in layer.loras] == ["meta", "cpu"]
    unmerge_lora(first)
    assert len(layer.loras) == 1 and layer.loras[0][0].device.type == "cpu"
    unmerge_lora(second)
    assert layer.loras == []


def test_block_swap_with_fp8_and_lora_matches_resident():
    from soundstage.models.just_dub_it.lora import lora_from_state_dict, loras_merged

    sd, meta = random_native_checkpoint(seed=10)
    ref, swapped = load_transformer(sd, meta), load_transformer(sd, meta)
    for m in (ref, swapped):
        store_fp8(m.transformer)
    g = torch.Generator().manual_seed(3)
    lora = lora_from_state_dict({
        "diffusion_model.transformer_blocks.1.attn1.to_k.lora_A.weight": torch.randn(2, 16, generator=g),
        "diffusion_model.transformer_blocks.1.attn1.to_k.lora_B.weight": torch.randn(16, 2, generator=g),
    })
    ctx, text = _ctx()
    with loras_merged(ref.transformer, [(lora, 1.0)]):
        want, _ = dub_stage1(ref, ctx, text, None, steps=2, seed=0)
    ltx2_block_swap(swapped, "cpu", resident=0)
    with loras_merged(swapped.transformer, [(lora, 1.0)]):
        got, _ = dub_stage1(swapped, ctx, text, None, steps=2, seed=0)
    assert torch.equal(got, want)


def test_real_19b_config_memory_modes(golden_dir):
    """Meta-device estimate at the LTX-2.0 19B config (issue 7: an fp8 + block-swap mode under 24 GB)."""
    from soundstage.models.just_dub_it.config import LTX2_19B_NATIVE_CONFIG

    manifest = json.loads((golden_dir / "manifests" / "ltx2_transformer_single_file.json").read_text())
    cfg = dict(LTX2_19B_NATIVE_CONFIG)
    bf16 = estimate_resident_bytes(cfg, fp8=False, resident=None)
    assert abs(bf16 - 2 * manifest["num_elements"]) < 0.001 * bf16  # the real model's size
    fp8_half = estimate_resident_bytes(cfg, fp8=True, resident=cfg["num_layers"] // 2)
    assert fp8_half < 20 * 2 ** 30 < bf16  # room for activations on a 24 GB card


def test_loader_node_block_swap_is_self_placing_and_keeps_results(tmp_path):
    import pytest

    from soundstage.testing.just_dub_it import write_tiny_single_file
    from soundstage.nodes.dubbing import load_ltx2_av

    path = str(write_tiny_single_file(tmp_path / "m.safetensors", seed=1))
    plain = load_ltx2_av(path, "fp32", "fp8_e4m3fn")
    swapped = load_ltx2_av(path, "fp32", "fp8_e4m3fn", offload="block_swap", resident_blocks=1)
    assert not plain.transformer.self_placing and swapped.transformer.self_placing
    assert swapped.connectors is not None and not swapped.connectors.self_placing  # only the transformer streams
    ctx, text = _ctx()
    with plain.transformer.use() as t:
        want, _ = dub_stage1(t, ctx, text, None, steps=2, seed=0)
    with swapped.transformer.use() as t:
        got, _ = dub_stage1(t, ctx, text, None, steps=2, seed=0)
    swap = swapped.transformer.placer
    assert torch.equal(got, want) and swap.loads == 2 * (len(t.transformer.transformer_blocks) - 1)
    with pytest.raises(ValueError, match="Load LTX-2 AV Model: input 'resident_blocks'"):
        load_ltx2_av(path, "fp32", "default", offload="block_swap", resident_blocks=99)


def test_benchmark_memory_flags_run_tiny():
    import runpy

    from conftest import REPO

    bench = runpy.run_path(str(REPO / "benchmarks" / "bench_ltx2.py"), run_name="bench")
    res = bench["main"](["--preset", "tiny", "--device", "cpu", "--fp8", "--block-swap", "1", "--no-prefetch",
                         "--warmup", "1", "--iters", "1"])
    assert res["fp8"] and res["block_swap_resident"] == 1 and not res["prefetch"]
    assert res["seconds_per_forward_call"] > 0
