"""LTX-2.3 22B and Gemma-3 12B memory estimates (issue 22): each mode's weight bytes checked against
arithmetic on the real key layout (element counts and shapes of the manifest), and fp8 Gemma."""
from __future__ import annotations

import json
import re

import pytest
import torch

from soundstage.models.common.fp8 import Fp8Linear
from soundstage.models.just_dub_it.config import LTX23_22B_NATIVE_CONFIG
from soundstage.models.just_dub_it.memory import GEMMA3_12B_TEXT, estimate_gemma_bytes, estimate_resident_bytes, gemma_fp8_

GIB = 2 ** 30
BLOCK = re.compile(r"^model\.diffusion_model\.transformer_blocks\.(\d+)\.(.+)$")


@pytest.fixture(scope="module")
def manifest(golden_dir):
    return json.loads((golden_dir / "manifests" / "ltx23_22b_single_file.json").read_text())


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _hand_bytes(manifest, *, fp8: bool, resident: int | None) -> int:
    """Weight bytes from the manifest alone: bf16 everywhere; with fp8, each block linear weight is
    1 byte per element plus one float32 scale; with block swap, the non-block weights, ``resident``
    blocks and the two blocks in flight."""
    outside, blocks = 0, {}
    for key, info in manifest["keys"].items():
        shape = info["shape"]
        m = BLOCK.match(key)
        linear = m and len(shape) == 2 and key.endswith(".weight") and "scale_shift" not in key
        size = (_numel(shape) + 4) if (fp8 and linear) else 2 * _numel(shape)
        if m:
            blocks[int(m.group(1))] = blocks.get(int(m.group(1)), 0) + size
        else:
            outside += size
    sizes = [blocks[i] for i in sorted(blocks)]
    if resident is None:
        return outside + sum(sizes)
    return outside + sum(sizes[:resident]) + sum(sorted(sizes[resident:], reverse=True)[:2])


def _meta_22b(fp8: bool):
    from soundstage.models.just_dub_it.config import diffusers_transformer_kwargs
    from soundstage.models.just_dub_it.memory import store_fp8
    from soundstage.models.just_dub_it.transformer import build_transformer

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("meta"):
            model = build_transformer(diffusers_transformer_kwargs(dict(LTX23_22B_NATIVE_CONFIG)))
    finally:
        torch.set_default_dtype(previous)
    if fp8:
        store_fp8(model)
    return model


@pytest.mark.parametrize("fp8", [False, True])
def test_22b_weight_modes_match_the_manifest_arithmetic(manifest, fp8):
    from soundstage.models.just_dub_it.memory import resident_weight_bytes

    model = _meta_22b(fp8)
    for resident in (None, 0, 8, 16, 47):
        assert resident_weight_bytes(model, resident) == _hand_bytes(manifest, fp8=fp8, resident=resident), resident


def test_estimate_builds_the_22b_from_its_config(manifest):
    got = estimate_resident_bytes(dict(LTX23_22B_NATIVE_CONFIG), fp8=True, resident=16)
    assert got == _hand_bytes(manifest, fp8=True, resident=16)


def test_22b_bf16_is_the_released_size_and_fp8_block_swap_fits_24gb(manifest):
    bf16 = _hand_bytes(manifest, fp8=False, resident=None)
    assert bf16 == 2 * manifest["num_elements"]  # 18.99 B elements
    swapped = _hand_bytes(manifest, fp8=True, resident=16)
    assert swapped < 8 * GIB < 24 * GIB < bf16  # leaves > 16 GiB for activations on a 24 GB card


def _gemma_params(c: dict) -> tuple[int, int]:
    """(all parameters, decoder-layer linear weights) of a Gemma-3 text tower, by hand."""
    h, i, hd = c["hidden_size"], c["intermediate_size"], c["head_dim"]
    q, kv = c["num_attention_heads"] * hd, c["num_key_value_heads"] * hd
    linears = h * q + 2 * h * kv + q * h + 3 * h * i
    norms = 4 * h + 2 * hd  # input/post-attention/pre-/post-feedforward norms, q_norm, k_norm
    layers = c["num_hidden_layers"]
    return c["vocab_size"] * h + layers * (linears + norms) + h, layers * linears


def test_gemma_12b_estimate_matches_its_arithmetic():
    total, linear = _gemma_params(GEMMA3_12B_TEXT)
    n_linears = GEMMA3_12B_TEXT["num_hidden_layers"] * 7
    buffers = 8192  # rotary frequencies (float32, head_dim / 2 per table) and the embedding scale: a few KiB
    assert 0 <= estimate_gemma_bytes(fp8=False) - 2 * total < buffers
    assert 0 <= estimate_gemma_bytes(fp8=True) - (2 * (total - linear) + linear + 4 * n_linears) < buffers
    assert estimate_gemma_bytes(fp8=True) < 12 * GIB < 24 * GIB  # text encoding fits beside nothing else


def test_gemma_fp8_storage_keeps_the_hidden_states_close():
    from transformers import Gemma3TextConfig, Gemma3TextModel

    torch.manual_seed(0)
    cfg = Gemma3TextConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=64)
    ref, fp8 = Gemma3TextModel(cfg).eval(), Gemma3TextModel(cfg).eval()
    fp8.load_state_dict(ref.state_dict())
    assert gemma_fp8_(fp8) == 2 * 7
    assert isinstance(fp8.layers[0].mlp.down_proj, Fp8Linear) and not isinstance(fp8.embed_tokens, Fp8Linear)
    other = Gemma3TextModel(cfg).eval()  # another random model: the scale of a real difference
    ids = torch.randint(0, 50, (1, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got, far = (torch.stack(m(ids, output_hidden_states=True).hidden_states[1:]) for m in (ref, fp8, other))
    err, scale = (got - want).norm().item(), (far - want).norm().item()
    assert 0 < err < 0.1 * scale  # e4m3 rounding (3 mantissa bits), far below another model's distance


def test_text_encoder_loader_stores_gemma_in_fp8(tmp_path):
    from soundstage.nodes.dubbing import load_text_encoder
    from soundstage.testing.just_dub_it import write_tiny_gemma

    folder = write_tiny_gemma(tmp_path / "gemma")
    path = str(folder / "model.safetensors")
    text = load_text_encoder(path, "fp32", 16, weight_storage="fp8_e4m3fn")
    linears = [m for m in text.encoder.model.modules() if isinstance(m, Fp8Linear)]
    assert len(linears) == 2 * 7  # 2 tiny layers x (q, k, v, o, gate, up, down)
    with pytest.raises(ValueError, match="Load LTX-2 Text Encoder: input 'weight_storage'"):
        load_text_encoder(path, "fp32", 16, weight_storage="int4")


def test_benchmark_runs_the_23_dubit_layout_tiny():
    import runpy

    from conftest import REPO

    bench = runpy.run_path(str(REPO / "benchmarks" / "bench_ltx2.py"), run_name="bench")
    res = bench["main"](["--version", "2.3", "--preset", "tiny", "--device", "cpu", "--fp8", "--block-swap", "1",
                         "--warmup", "1", "--iters", "1"])
    p = bench["PRESETS"]["tiny"]
    target = ((p["frames"] - 1) // 8 + 1) * (p["height"] // 32) * (p["width"] // 32)
    assert res["version"] == "2.3" and res["video_tokens"] == 2 * target  # the reference is appended
    assert res["seconds_per_forward_call"] > 0
