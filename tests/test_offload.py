"""Shared fp8 storage, block swap and self-placing model handles (models/common/fp8.py, block_swap.py)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from soundstage.models.common.block_swap import BlockSwap
from soundstage.models.common.device import Placement
from soundstage.models.common.fp8 import (FP8, FP8_MAX, FP8_REL_ERROR, FP8_SUBNORMAL_ABS_ERROR, Fp8Linear,
                                          dequantize_fp8, fp8_matmul_supported, linears_to_fp8_, quantize_fp8,
                                          scaled_fp8_linear, tensor_bytes)
from soundstage.nodes import model_patch
from soundstage.nodes.model_patch import ModelHandle

CPU = torch.device("cpu")
META = torch.device("meta")


# ----------------------------------------------------------------------------- fp8
def test_round_trip_within_the_e4m3_bound():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(64, 96, generator=g) * 0.03
    w[0, 0] = 0.5  # the outlier sets the scale
    w[1, :8] = torch.tensor([1e-7, -3e-6, 2e-5, 0.0, 7e-4, -1e-3, 4e-3, 1e-2])  # subnormal and tiny values
    q, scale = quantize_fp8(w)
    assert q.dtype == FP8 and q.element_size() == 1 and scale.dtype == torch.float32
    assert q.float().abs().max() <= FP8_MAX and q.float().abs().max() > FP8_MAX / 2  # range used, no overflow
    assert torch.log2(scale).item() == round(torch.log2(scale).item())  # a power of two
    err = (dequantize_fp8(q, scale, torch.float32) - w).abs()
    bound = torch.maximum(w.abs() * FP8_REL_ERROR, torch.full_like(w, FP8_SUBNORMAL_ABS_ERROR) * scale)
    assert bool((err <= bound).all())
    assert err.max() > 0  # really quantised
    # The power-of-two scale makes bf16 dequantisation exact.
    assert torch.equal(dequantize_fp8(q, scale, torch.bfloat16).float(), dequantize_fp8(q, scale, torch.float32))


def test_fp8_linear_from_linear_matches_its_dequantised_product():
    torch.manual_seed(0)
    lin = nn.Linear(32, 16)
    f8 = Fp8Linear.from_linear(lin)
    x = torch.randn(3, 32)
    torch.testing.assert_close(f8(x), x @ f8.dequantized(torch.float32).T + lin.bias, atol=1e-5, rtol=0)
    assert 0 < (f8(x) - lin(x)).abs().max() < 0.05 * lin(x).abs().max()
    assert f8(x.double()).dtype == torch.float64  # compute follows the input when no dtype is set
    assert Fp8Linear.from_linear(lin, compute_dtype=torch.bfloat16)(x).dtype == torch.bfloat16


def test_fp8_storage_survives_dtype_casts_and_keeps_fp8_files_exact():
    lin = nn.Linear(8, 4, bias=False)
    lin.weight.data = (torch.randn(4, 8) * 3).to(FP8)  # as a released fp8 file stores it
    f8 = Fp8Linear.from_linear(lin)
    assert f8.weight_scale.item() == 1.0
    assert torch.equal(f8.weight.view(torch.uint8), lin.weight.view(torch.uint8))
    f8.to(torch.bfloat16)  # what a dtype-casting placement does
    assert f8.weight.dtype == FP8 and torch.equal(f8.weight.view(torch.uint8), lin.weight.view(torch.uint8))


def test_fp8_model_output_close_to_fp32():
    torch.manual_seed(1)
    ref = nn.Sequential(nn.Linear(48, 128), nn.GELU(), nn.Linear(128, 48), nn.GELU(), nn.Linear(48, 32))
    fp8 = nn.Sequential(*[nn.Linear(m.in_features, m.out_features) if isinstance(m, nn.Linear) else m for m in ref])
    fp8.load_state_dict(ref.state_dict())
    before = tensor_bytes(fp8)
    assert linears_to_fp8_(fp8) == 3
    assert tensor_bytes(fp8) < 0.3 * before  # fp32 -> 1 byte per weight (+ fp32 biases and scales)
    x = torch.randn(16, 48)
    want, got = ref(x), fp8(x)
    rel = (got - want).norm() / want.norm()
    assert 0 < rel < 0.05, rel


def test_fp8_matmul_falls_back_cleanly_where_unsupported():
    torch.manual_seed(2)
    lin = nn.Linear(64, 48)
    slow = Fp8Linear.from_linear(lin, compute_dtype=torch.bfloat16)
    fast = Fp8Linear.from_linear(lin, compute_dtype=torch.bfloat16, fp8_matmul=True)
    x = torch.randn(2, 5, 64)
    assert not fp8_matmul_supported("cpu") and not fp8_matmul_supported("meta")
    assert torch.equal(fast(x), slow(x))  # CPU: the dequantised bf16 product


def test_scaled_fp8_kernel_path_numerics():
    torch.manual_seed(3)
    lin = nn.Linear(64, 48)
    f8 = Fp8Linear.from_linear(lin, compute_dtype=torch.bfloat16)
    x = torch.randn(2, 5, 64, dtype=torch.bfloat16)
    try:
        out = scaled_fp8_linear(x, f8.weight, f8.weight_scale, f8.bias, torch.bfloat16)
    except (RuntimeError, NotImplementedError) as exc:  # no CPU fp8 GEMM in this torch build
        pytest.skip(f"torch._scaled_mm unavailable on CPU: {exc}")
    ref = f8(x).float()
    assert out.shape == (2, 5, 48) and out.dtype == torch.bfloat16
    rel = (out.float() - ref).abs().max() / ref.abs().max()
    assert 0 < rel < 0.06, rel  # activation rounding to e4m3 on top of the weight rounding


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fp8_matmul_on_cuda_close_to_dequantised():
    lin = nn.Linear(256, 128).cuda()
    fast = Fp8Linear.from_linear(lin, compute_dtype=torch.bfloat16, fp8_matmul=True)
    slow = Fp8Linear.from_linear(lin, compute_dtype=torch.bfloat16)
    x = torch.randn(64, 256, device="cuda")
    rel = (fast(x).float() - slow(x).float()).abs().max() / slow(x).float().abs().max()
    assert rel < 0.06


# ----------------------------------------------------------------------------- block swap
class _Stack(nn.Module):
    """A tiny model that loops over its blocks itself (like Ovi's fusion loop)."""

    def __init__(self, n=4, dim=16):
        super().__init__()
        self.embed = nn.Linear(dim, dim)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.LayerNorm(dim)) for _ in range(n))
        self.head = nn.Linear(dim, dim)
        self.block_context = None

    def forward(self, x):
        x = self.embed(x)
        for i, block in enumerate(self.blocks):
            if self.block_context is None:
                x = x + block(x)
            else:
                with self.block_context(i):
                    x = x + block(x)
        return self.head(x)


def _stack(seed=0, n=4):
    torch.manual_seed(seed)
    return _Stack(n).eval().requires_grad_(False)


def test_block_swap_context_is_bit_identical_and_restores_storage():
    model = _stack()
    x = torch.randn(3, 16)
    want = model(x)
    homes = [p for p in model.blocks[3].parameters()]
    swap = BlockSwap(model, list(model.blocks), CPU, resident=1)
    swap.place()
    model.block_context = swap.around
    got = model(x)
    assert torch.equal(got, want)
    assert swap.loads == 3 and swap.prefetched == 3  # each streamed block was staged while its predecessor ran
    assert swap.max_staged <= 2  # the running unit + the one prefetched
    assert all(a is b for a, b in zip(model.blocks[3].parameters(), homes))  # stored tensors never replaced
    assert swap._live == {} and swap._staged == {}


def test_block_swap_hooks_bit_identical_without_prefetch_too():
    model = _stack(1, n=3)
    x = torch.randn(2, 16)
    want = model(x)
    swap = BlockSwap(model, list(model.blocks), CPU, resident=0, prefetch=False).attach_hooks()
    got = model(x)
    assert torch.equal(got, want) and swap.loads == 3 and swap.prefetched == 0
    swap.detach_hooks()
    model(x)
    assert swap.loads == 3  # hooks gone


def test_block_swap_prefetch_uses_a_side_stream_only_on_cuda(monkeypatch):
    model = _stack(2)
    swap = BlockSwap(model, list(model.blocks), CPU, resident=0)
    monkeypatch.setattr(swap, "_side_stream", lambda: pytest.fail("no CUDA stream on CPU"))
    swap.enter(0)
    assert set(swap._staged) == {1} and swap._staged[1].event is None  # staged synchronously
    swap.exit(0)
    swap.release()
    assert swap._staged == {}


def test_cuda_prefetch_branch_orders_copies_with_events(monkeypatch):
    """The CUDA branch with stand-in streams/events: every prefetched unit is waited for before it is
    installed, and its copies are recorded on the compute stream (so the allocator cannot reuse them early)."""
    log = []

    class Event:
        def record(self, stream):
            log.append(("record", stream))

    class Stream:
        def __init__(self, name):
            self.name = name

        def wait_event(self, event):
            log.append(("wait", self.name))

    compute, side = Stream("compute"), Stream("side")
    recorded = []
    monkeypatch.setattr(torch.cuda, "stream", lambda s: __import__("contextlib").nullcontext())
    monkeypatch.setattr(torch.cuda, "Event", Event)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: compute)
    monkeypatch.setattr(torch.Tensor, "record_stream", lambda t, s: recorded.append(s), raising=False)
    model = _stack(7, n=3)
    x = torch.randn(2, 16)
    want = model(x)
    swap = BlockSwap(model, list(model.blocks), CPU, resident=1)
    monkeypatch.setattr(swap, "_is_cuda", lambda: True)
    monkeypatch.setattr(swap, "_side_stream", lambda: side)
    model.block_context = swap.around
    assert torch.equal(model(x), want)
    assert log == [("record", side), ("wait", "compute"), ("record", side), ("wait", "compute")]
    per_unit = len(list(model.blocks[1].parameters())) + len(list(model.blocks[1].buffers()))
    assert recorded == [compute] * (2 * per_unit) and swap.prefetched == 2


def test_hook_exit_runs_when_a_block_raises():
    model = _stack(3, n=2)
    swap = BlockSwap(model, list(model.blocks), CPU, resident=0).attach_hooks()
    model.blocks[1].register_forward_pre_hook(lambda *a: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        model(torch.randn(1, 16))
    assert swap._live == {}  # block 0 exited normally, block 1's copy dropped despite the error


def test_lora_style_inplace_edit_of_stored_weight_reaches_the_next_forward():
    model = _stack(4)
    swap = BlockSwap(model, list(model.blocks), CPU, resident=0)
    model.block_context = swap.around
    x = torch.randn(2, 16)
    before = model(x)
    with torch.no_grad():
        model.blocks[2][0].weight.add_(0.5)
    assert not torch.equal(model(x), before)


def test_resident_bytes_counts_resident_and_two_streamed_units():
    with torch.device("meta"):
        model = _Stack(n=5)
    unit = tensor_bytes(model.blocks[0])
    outside = tensor_bytes(model.embed) + tensor_bytes(model.head)
    assert BlockSwap(model, list(model.blocks), META, 0).resident_bytes() == outside + 2 * unit
    assert BlockSwap(model, list(model.blocks), META, 2).resident_bytes() == outside + 4 * unit
    assert BlockSwap(model, list(model.blocks), META, 5).resident_bytes() == tensor_bytes(model)
    with pytest.raises(ValueError, match="0..5"):
        BlockSwap(model, list(model.blocks), META, 6)


def test_place_and_release_move_only_what_the_mode_says():
    model = _stack(5)
    swap = BlockSwap(model, list(model.blocks), CPU, resident=1, storage=META)
    swap.place()  # "meta" stands in for the storage and offload devices: visibly not the compute device
    assert model.embed.weight.device == CPU and model.head.bias.device == CPU
    assert model.blocks[0][0].weight.device == CPU
    assert all(p.device == META for b in model.blocks[1:] for p in b.parameters())
    swap.release(META)
    assert all(p.device == META for p in model.parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_block_swap_cuda_prefetch_bit_identical():
    model = _stack(6, n=4)
    x = torch.randn(3, 16)
    want = model.cuda()(x.cuda())
    model.cpu()
    swap = BlockSwap(model, list(model.blocks), "cuda", resident=1)
    swap.place()
    model.block_context = swap.around
    got = model(x.cuda())
    assert torch.equal(got, want) and swap.prefetched == 3
    assert all(p.is_pinned() for p in model.blocks[2].parameters())


# ----------------------------------------------------------------------------- ModelHandle
class _Placer:
    def __init__(self, module):
        self.module, self.calls = module, []

    def place(self, device):
        self.calls.append(("place", device))
        self.module.to(device)

    def release(self, offload):
        self.calls.append(("release", offload))

    def resident_bytes(self):
        return 1234


def test_self_placing_handle_calls_the_model_placement_headless():
    module = nn.Linear(3, 2)
    placer = _Placer(module)
    handle = ModelHandle(module, Placement(CPU, torch.float16, offload=META), placer=placer)
    assert handle.self_placing and handle._patcher is None
    with handle.use() as live:
        assert live is module and placer.calls == [("place", CPU)]
        assert module.weight.dtype == torch.float32  # the handle's dtype cast is not applied
    assert placer.calls[-1] == ("release", META)
    keep = _Placer(module)
    with ModelHandle(module, Placement(CPU, torch.float32), placer=keep, offload_after_use=False).use():
        pass
    assert keep.calls == [("place", CPU)]


def test_self_placing_true_uses_the_module_place_method():
    class Own(nn.Linear):
        def __init__(self):
            super().__init__(2, 2)
            self.places = []

        def place(self, device):
            self.places.append(device)

    own = Own()
    with ModelHandle(own, Placement(CPU, torch.float32, offload=META), self_placing=True).use():
        assert own.places == [CPU]
    assert own.places == [CPU, META]
    with pytest.raises(TypeError, match="place"):
        ModelHandle(nn.Linear(2, 2), Placement(CPU, torch.float32), self_placing=True)


def test_self_placing_in_comfyui_frees_memory_and_never_loads_the_whole_module(monkeypatch):
    module = nn.Linear(3, 2)
    placer = _Placer(module)
    handle = ModelHandle(module, Placement(CPU, torch.float32, offload=META), placer=placer,
                         offload_after_use=False)
    mm = model_patch.model_management
    freed = []
    monkeypatch.setattr(model_patch, "IN_COMFYUI", True)
    monkeypatch.setattr(mm, "free_memory", lambda need, device, *a, **k: freed.append((need, device)), raising=False)
    monkeypatch.setattr(mm, "load_models_gpu", lambda models: pytest.fail("whole module handed to the manager"),
                        raising=False)
    with handle.use():
        assert freed == [(1234, CPU)]
    # Invisible to the model manager, so released after use even when asked to keep it headless.
    assert placer.calls == [("place", CPU), ("release", META)]
