"""Shared fp8 storage, block swap and self-placing model handles (models/common/fp8.py, block_swap.py)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from soundstage.models.common.block_swap import BlockSwap, _own_tensors, pack_pinned
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


def test_fp8_matmul_path_keeps_cuda_layout_rules(monkeypatch):
    """The arguments cuBLAS's fp8 GEMM insists on (checked by torch on CUDA only): row-major mat1 even for
    a strided input, column-major mat2, K and N multiples of 16, fp32 tensor-wise scales, bias in out_dtype."""
    torch.manual_seed(11)
    f8 = Fp8Linear.from_linear(nn.Linear(64, 48), compute_dtype=torch.bfloat16)
    seen = []
    real = torch._scaled_mm

    def spy(a, b, *, scale_a, scale_b, bias=None, out_dtype=None, **kw):
        seen.append(dict(a_stride=a.stride(), b_stride=b.stride(), k=a.shape[1], n=b.shape[1],
                         scales=(scale_a.dtype, scale_a.numel(), scale_b.dtype, scale_b.numel()),
                         bias=None if bias is None else bias.dtype))
        return real(a, b, scale_a=scale_a, scale_b=scale_b, bias=bias, out_dtype=out_dtype, **kw)

    monkeypatch.setattr(torch, "_scaled_mm", spy)
    x = torch.randn(64, 2, 5, dtype=torch.bfloat16).permute(1, 2, 0)  # last dim not contiguous
    try:
        out = scaled_fp8_linear(x, f8.weight, f8.weight_scale, f8.bias, torch.bfloat16)
    except (RuntimeError, NotImplementedError) as exc:
        if not seen:
            raise
        pytest.skip(f"torch._scaled_mm unavailable on CPU: {exc}")
    (call,) = seen
    assert call["a_stride"] == (64, 1) and call["b_stride"] == (1, 64)
    assert call["k"] % 16 == 0 and call["n"] % 16 == 0
    assert call["scales"] == (torch.float32, 1, torch.float32, 1) and call["bias"] == torch.bfloat16
    ref = f8(x.contiguous()).float()
    assert out.shape == (2, 5, 48) and (out.float() - ref).abs().max() / ref.abs().max() < 0.06


@pytest.mark.skipif(not fp8_matmul_supported("cuda"), reason="needs a GPU with fp8 GEMMs (sm89+)")
def test_scaled_fp8_linear_on_cuda_takes_strided_inputs_in_bf16_and_fp16():
    torch.manual_seed(15)
    f8 = Fp8Linear.from_linear(nn.Linear(256, 128).cuda(), fp8_matmul=True)
    for dtype in (torch.bfloat16, torch.float16):
        x = torch.randn(256, 3, 7, device="cuda", dtype=dtype).permute(1, 2, 0)  # last dim strided
        out = scaled_fp8_linear(x, f8.weight, f8.weight_scale, f8.bias, dtype)
        ref = torch.nn.functional.linear(x.float(), f8.dequantized(torch.float32), f8.bias.float())
        assert out.shape == (3, 7, 128) and out.dtype == dtype
        assert (out.float() - ref).abs().max() / ref.abs().max() < 0.06


def test_fp8_matmul_only_without_autograd(monkeypatch):
    """_scaled_mm has no backward and quantises detached: inputs that need a gradient take the dequantised
    product (where the fp8 GEMM is available, simulated here)."""
    from soundstage.models.common import fp8 as fp8_mod

    calls = []
    monkeypatch.setattr(fp8_mod, "fp8_matmul_supported", lambda device: True)
    monkeypatch.setattr(fp8_mod, "scaled_fp8_linear", lambda x, *a: calls.append(x) or torch.zeros(
        *x.shape[:-1], 48, dtype=x.dtype))
    fast = Fp8Linear.from_linear(nn.Linear(64, 48), compute_dtype=torch.bfloat16, fp8_matmul=True)
    x = torch.randn(3, 64, requires_grad=True)
    fast(x).float().sum().backward()
    assert calls == [] and x.grad is not None and x.grad.abs().sum() > 0
    with torch.no_grad():
        fast(x)
    fast(x.detach())
    assert len(calls) == 2


def test_fp8_matmul_capability_rules(monkeypatch):
    from soundstage.models.common import fp8 as fp8_mod

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(fp8_mod, "_cuda_has_fp8", lambda index: True)
    monkeypatch.setattr(torch.version, "hip", None)
    assert fp8_matmul_supported("cuda:0")
    monkeypatch.setattr(torch.version, "hip", "6.4")  # MI300 reports 9.4 but takes e4m3fnuz
    assert not fp8_matmul_supported("cuda:0")


def test_auto_dtype_is_bf16_only_where_native(monkeypatch):
    from soundstage.models.common.device import default_dtype

    asked = []
    # A T4 (bf16 only emulated, yet torch.cuda.is_bf16_supported() says yes) and an L40S.
    capability = {0: (7, 5), 1: (8, 9)}
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: asked.append(d) or capability[d.index])
    monkeypatch.setattr(torch.version, "hip", None)
    assert default_dtype(torch.device("cuda", 0)) == torch.float16
    assert default_dtype(torch.device("cuda", 1)) == torch.bfloat16
    assert asked == [torch.device("cuda", 0), torch.device("cuda", 1)]  # the device asked about, not the current one
    monkeypatch.setattr(torch.version, "hip", "6.4")
    assert default_dtype(torch.device("cuda", 0)) == torch.bfloat16
    assert default_dtype(CPU) == torch.float32


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
    swap.exit(0)
    assert set(swap._staged) == {1} and swap._staged[1].event is None  # staged synchronously
    swap.release()
    assert swap._staged == {}


class _FakeCuda:
    """Stand-in CUDA streams and events that log, in order, what the host asks of them."""

    def __init__(self, monkeypatch):
        self.log, self.events = [], 0
        fake = self

        class Event:
            def __init__(self):
                self.id, fake.events = fake.events, fake.events + 1

            def record(self, stream):
                fake.log.append(("record", self.id, stream.name))

            def synchronize(self):
                fake.log.append(("host waits", self.id))

        class Stream:
            def __init__(self, name):
                self.name = name

            def wait_event(self, event):
                fake.log.append(("stream waits", self.name, event.id))

        self.compute, self.side = Stream("compute"), Stream("side")
        monkeypatch.setattr(torch.cuda, "stream", lambda s: __import__("contextlib").nullcontext())
        monkeypatch.setattr(torch.cuda, "Event", Event)
        monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: self.compute)
        self.recorded = []  # streams passed to record_stream
        monkeypatch.setattr(torch.Tensor, "record_stream", lambda t, s: self.recorded.append(s.name), raising=False)

    def wire(self, swap, monkeypatch):
        monkeypatch.setattr(swap, "_is_cuda", lambda: True)
        monkeypatch.setattr(swap, "_side_stream", lambda: self.side)
        return swap


def test_cuda_prefetch_branch_orders_copies_with_events(monkeypatch):
    """The CUDA branch with stand-in streams/events: every prefetched unit is waited for before it is
    installed, and its copies are recorded on the compute stream (so the allocator cannot reuse them early)."""
    cuda = _FakeCuda(monkeypatch)
    model = _stack(7, n=3)
    x = torch.randn(2, 16)
    want = model(x)
    swap = cuda.wire(BlockSwap(model, list(model.blocks), CPU, resident=1), monkeypatch)
    model.block_context = swap.around
    assert torch.equal(model(x), want)
    assert [e for e in cuda.log if e[0] != "host waits"] == [
        ("record", 0, "side"), ("stream waits", "compute", 0), ("record", 1, "compute"), ("record", 2, "side"),
        ("stream waits", "compute", 2), ("record", 3, "compute")]
    per_unit = len(list(model.blocks[1].parameters())) + len(list(model.blocks[1].buffers()))
    assert cuda.recorded == ["compute"] * (2 * per_unit) and swap.prefetched == 2


def test_cuda_host_waits_bound_device_copies_and_protect_pinned_sources(monkeypatch):
    """The host runs ahead of the GPU: unit i+1 is staged when the host leaves unit i, after waiting until
    the compute stream is past unit i-1 (else the allocator cannot reuse that memory and every unit the
    host ran ahead of keeps its own copy), and a unit's exit waits for its copies (a LoRA merge right after
    the forward must not race a pending copy from the pinned tensors)."""
    cuda = _FakeCuda(monkeypatch)
    model = _stack(8, n=3)
    x = torch.randn(2, 16)
    want = model(x)
    swap = cuda.wire(BlockSwap(model, list(model.blocks), CPU, resident=0), monkeypatch)
    model.block_context = swap.around
    assert torch.equal(model(x), want)
    assert cuda.log == [
        ("record", 0, "compute"),  # unit 0 copied on the compute stream (nothing prefetched it)
        ("record", 1, "compute"),  # exit 0: where the compute stream is done with unit 0
        ("record", 2, "side"),  # unit 1 prefetched
        ("host waits", 0),  # then unit 0's copies have been read
        ("stream waits", "compute", 2),  # unit 1 runs after its copy
        ("record", 3, "compute"),
        ("host waits", 1), ("record", 4, "side"),  # unit 2 staged once unit 0 has run (unit 1 is queued)
        ("host waits", 2),
        ("stream waits", "compute", 4),
        ("record", 5, "compute"), ("host waits", 4),
    ]

    def last_prefetch():
        return [e for kind, e, *where in cuda.log if kind == "record" and where == ["side"]][-1]

    swap.enter(0)
    swap.exit(0)  # as if unit 1 then raised: unit 1 stays staged
    stale = last_prefetch()
    swap.enter(0)  # the next pass drops it (its stored tensors may have changed since)
    assert ("host waits", stale) in cuda.log and swap._staged == {}
    swap.exit(0)
    swap.release()  # and release waits for a prefetch it drops
    assert cuda.log[-1] == ("host waits", last_prefetch()) and swap._staged == {}


def test_cuda_branch_without_prefetch_waits_before_each_stage(monkeypatch):
    cuda = _FakeCuda(monkeypatch)
    model = _stack(9, n=2)
    swap = cuda.wire(BlockSwap(model, list(model.blocks), CPU, resident=0, prefetch=False), monkeypatch)
    model.block_context = swap.around
    model(torch.randn(1, 16))
    assert cuda.log == [("record", 0, "compute"), ("record", 1, "compute"), ("host waits", 0),
                        ("host waits", 1), ("record", 2, "compute"), ("record", 3, "compute"), ("host waits", 2)]


def test_pinning_packs_streamed_tensors_into_power_of_two_chunks():
    """torch rounds each pinned allocation up to a power of two; the streamed tensors are packed into
    power-of-two chunks instead and become views of them, values, dtypes and flags unchanged."""
    model = _stack(14, n=3)
    model.blocks[2][0].weight.requires_grad_(True)
    model.blocks[1][2].register_buffer("steps", torch.arange(3))  # an int buffer among float parameters
    x = torch.randn(2, 16)
    want = model(x)
    entries = [e for b in model.blocks[1:] for e in _own_tensors(b)]
    raw = sum(t.numel() * t.element_size() for *_, t in entries)
    chunks = pack_pinned(entries, pin=False, min_chunk=2048)
    assert entries == [None] * len(entries)  # consumed: each original can be freed once copied
    assert len(chunks) > 1 and all(c.numel() & (c.numel() - 1) == 0 for c in chunks)
    assert sum(c.numel() for c in chunks) < 4 * raw  # toy sizes: the 512-byte alignment dominates
    homes = {c.untyped_storage().data_ptr() for c in chunks}
    tensors = list(model.blocks[1].parameters()) + list(model.blocks[2].parameters()) + list(model.blocks[1].buffers())
    assert all(t.untyped_storage().data_ptr() in homes for t in tensors)
    assert all(isinstance(p, nn.Parameter) for p in model.blocks[1].parameters())
    assert model.blocks[2][0].weight.requires_grad and not model.blocks[1][0].weight.requires_grad
    assert model.blocks[1][2].steps.dtype == torch.int64 and model.blocks[1][2].steps.tolist() == [0, 1, 2]
    assert torch.equal(model(x), want)


def test_pinning_chunks_waste_less_than_pinning_each_tensor():
    """Shapes like Ovi's blocks (3072 x 3072 attention and 3072 x 14336 FFN weights), scaled down 1024x."""
    tensors = {}
    for b in range(6):
        tensors.update({f"{b}.ffn{i}": torch.zeros(3 * 14, 1024) for i in range(2)})
        tensors.update({f"{b}.attn{i}": torch.zeros(3 * 3, 1024) for i in range(8)})
    store = dict(tensors)
    raw = sum(t.numel() * 4 for t in tensors.values())
    per_tensor = sum(1 << (t.numel() * 4 - 1).bit_length() for t in tensors.values())
    chunks = pack_pinned([(store, k, t) for k, t in tensors.items()], pin=False, min_chunk=2 ** 18)
    packed = sum(c.numel() for c in chunks)
    assert per_tensor > 1.3 * raw and packed < 1.1 * raw, (per_tensor / raw, packed / raw)


def test_place_keeps_trainable_weights_trainable():
    model = _Stack(3).train()
    model.head.requires_grad_(False)
    BlockSwap(model, list(model.blocks), META, resident=1).place()  # moves the non-block weights
    assert model.embed.weight.device == META and model.embed.weight.requires_grad
    assert not model.head.weight.requires_grad


def test_block_swap_keeps_gradients_of_trainable_streamed_weights():
    torch.manual_seed(10)
    model = _Stack(3).train()
    x = torch.randn(2, 16)
    model(x).square().mean().backward()
    want = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    swap = BlockSwap(model, list(model.blocks), CPU, resident=1)
    swap.place()
    model.block_context = swap.around
    model(x).square().mean().backward()
    assert swap.prefetched == 2
    for p, g in zip(model.parameters(), want):
        assert p.grad is not None and torch.allclose(p.grad, g)


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


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_block_swap_cuda_keeps_gradients_of_trainable_streamed_weights():
    torch.manual_seed(13)
    model = _Stack(3).train()
    x = torch.randn(2, 16)
    model(x).square().mean().backward()
    want = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    swap = BlockSwap(model, list(model.blocks), "cuda", resident=1)
    swap.place()  # pins the streamed weights: they must stay trainable
    model.block_context = swap.around
    model(x.cuda()).square().mean().backward()
    for p, g in zip(model.parameters(), want):
        assert p.grad is not None and torch.allclose(p.grad.cpu(), g, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_block_swap_cuda_streamed_memory_stays_bounded_while_the_host_runs_ahead():
    """Each block keeps the GPU busy ~1 ms, so the host runs ahead: without the host-side waits every
    unit it ran ahead of would hold its own device copy (freed blocks are reusable only once the compute
    stream is past them). 16 MiB weights get segments of their own, so reserved memory shows the copies."""
    dim, n = 2048, 8
    with torch.no_grad():
        model = _Stack(n, dim).eval().requires_grad_(False)
    for block in model.blocks:
        block.register_forward_pre_hook(lambda mod, args: torch.cuda._sleep(2_000_000))
    swap = BlockSwap(model, list(model.blocks), "cuda", resident=0)
    swap.place()
    model.block_context = swap.around
    x = torch.randn(4, dim, device="cuda")
    with torch.no_grad():
        model(x)  # warm-up (cuBLAS workspace)
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_reserved()
        model(x)
        torch.cuda.synchronize()
    unit = tensor_bytes(model.blocks[0])
    # Unit 0 is copied on the compute stream, the prefetches on the side stream (separate allocator pools):
    # three unit-sized segments, against one per unit when the host runs ahead unchecked.
    grown = torch.cuda.max_memory_reserved() - base
    assert grown <= 3 * unit + 16 * 2**20, grown / unit


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
