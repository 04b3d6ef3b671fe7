"""fp8 weight storage and block swapping give the outputs they promise."""
from __future__ import annotations

import torch

from soundstage.models.ovi.memory import FP8_DTYPE, BlockSwap, Fp8Linear, fp8_blocks_, quantize_fp8
from soundstage.models.ovi.tiny import tiny_fusion


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(1, 48, 2, 4, 4, generator=g), torch.randn(1, 9, 20, generator=g), torch.tensor([700]),
            torch.randn(1, 5, 24, generator=g), torch.randn(1, 4, 24, generator=g))


def test_fp8_round_trip_error_bound():
    w = torch.randn(64, 96, generator=torch.Generator().manual_seed(0)) * 0.03
    w[0, 0] = 0.5  # outlier sets the scale
    q, scale = quantize_fp8(w)
    assert q.dtype == FP8_DTYPE and q.element_size() == 1
    err = (q.float() * scale - w).abs()
    # e4m3: 3 mantissa bits -> relative error <= 2^-4 for normals; absolute 2^-10 * scale below 2^-6.
    bound = torch.maximum(w.abs() * 2.0 ** -4, torch.full_like(w, 2.0 ** -10) * scale)
    assert bool((err <= bound * 1.0001).all())
    assert err.max() > 0  # it really was quantised


def test_fp8_linear_matches_dequantised_product():
    lin = torch.nn.Linear(32, 16)
    f8 = Fp8Linear(lin, compute_dtype=torch.float32)
    x = torch.randn(3, 32)
    torch.testing.assert_close(f8(x), x @ f8.dequantized_weight().T + lin.bias, atol=1e-5, rtol=0)
    assert (f8(x) - lin(x)).abs().max() < 0.05 * lin(x).abs().max()


def test_fp8_model_close_to_full_precision():
    ref_model = tiny_fusion(seed=4)
    ref = ref_model(*_inputs())
    model = tiny_fusion(seed=4)
    n = fp8_blocks_(model, compute_dtype=torch.float32)
    assert n == 2 * 2 * 12  # towers x blocks x (self q,k,v,o + cross q,k,v,o,k/v_fusion + 2 ffn)
    out = model(*_inputs())
    for o, r in zip(out, ref):
        rel = (o - r).abs().max() / r.abs().max()
        assert 0 < rel < 0.08, rel


def test_block_swap_matches_resident_and_restores_storage():
    model = tiny_fusion(seed=6, layers=3)
    ref = model(*_inputs(1))
    originals = [p for p in model.video_model.blocks[2].parameters()]
    swap = BlockSwap(model, device="cpu", resident=1)
    out = model(*_inputs(1))
    assert swap.loads == 2
    for o, r in zip(out, ref):
        assert torch.equal(o, r)
    assert all(a is b for a, b in zip(model.video_model.blocks[2].parameters(), originals))
    swap.detach()
    assert model.block_context is None


def test_fp8_release_file_kept_exact():
    # Ovi's model_fp8_e4m3fn.safetensors stores plain e4m3 casts: they must not be re-rounded.
    from soundstage.models.ovi.loader import load_ovi_fusion
    from soundstage.models.ovi.memory import cast_non_fp8_

    src = tiny_fusion(seed=8)
    sd = {k: (v.to(FP8_DTYPE) if ".blocks." in k and v.dim() == 2 else v) for k, v in src.state_dict().items()}
    model = load_ovi_fusion(sd, num_heads=2, text_len=16)
    fp8_blocks_(model)
    cast_non_fp8_(model, torch.bfloat16)
    lin = model.audio_model.blocks[1].cross_attn.k_fusion
    assert isinstance(lin, Fp8Linear) and lin.weight_scale.item() == 1.0
    assert lin.weight.dtype == FP8_DTYPE
    assert torch.equal(lin.weight.view(torch.uint8), sd["audio_model.blocks.1.cross_attn.k_fusion.weight"].view(torch.uint8))
    assert model.video_model.head.head.weight.dtype == torch.bfloat16
    v, a = model(*_inputs())
    assert torch.isfinite(v).all() and torch.isfinite(a).all()


def test_fp8_matmul_path_matches_dequantised_product():
    torch.manual_seed(0)
    lin = torch.nn.Linear(64, 48)
    slow = Fp8Linear(lin, torch.bfloat16)
    fast = Fp8Linear(lin, torch.bfloat16, fp8_matmul=True)
    x = torch.randn(2, 5, 64)
    ref = slow(x).float()
    out = fast(x).float()
    assert out.shape == (2, 5, 48) and out.dtype == torch.float32
    rel = (out - ref).abs().max() / ref.abs().max()
    assert 0 < rel < 0.06, rel  # activation rounding to e4m3 on top of the weight rounding


def test_fp8_matmul_model_close_and_scoped():
    ref = tiny_fusion(seed=4)(*_inputs())
    model = tiny_fusion(seed=4)
    fp8_blocks_(model, compute_dtype=torch.bfloat16, fp8_matmul="ffn")
    blk = model.video_model.blocks[0]
    assert blk.ffn[0].fp8_matmul and blk.ffn[2].fp8_matmul and not blk.self_attn.q.fp8_matmul
    out = model(*_inputs())
    for o, r in zip(out, ref):
        assert (o - r).abs().max() / r.abs().max() < 0.1
