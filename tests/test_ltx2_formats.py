"""LTX-2 loaders for the files ComfyUI users have: Gemma-3 as one ComfyUI file, and fp8 LTX-2 releases
(ComfyUI scaled fp8, ComfyUI mixed precision, plain e4m3 casts). All files are tiny and random."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from soundstage.models.common.checkpoint import CheckpointError
from soundstage.models.common.fp8 import FP8, FP8_MAX, Fp8Linear
from soundstage.models.just_dub_it.bundle import load_ltx2_parts
from soundstage.pipelines.just_dub_it import DubbingContext, TextContext, dub_stage1
from soundstage.models.just_dub_it.text import gemma_hidden_states, load_gemma
from soundstage.testing.just_dub_it import random_native_checkpoint, write_tiny_single_file
from soundstage.models.just_dub_it.transformer import load_transformer

BLOCKS = "model.diffusion_model.transformer_blocks."

# ------------------------------------------------------------------ Gemma-3 as one file


def _spiece_proto() -> bytes:
    """A tiny SentencePiece BPE model with Gemma's special ids (pad 0, eos 1, bos 2, unk 3)."""
    from transformers.utils import sentencepiece_model_pb2_new as pb

    m = pb.ModelProto()
    spec = m.trainer_spec
    spec.model_type, spec.byte_fallback = 2, True
    spec.pad_id, spec.eos_id, spec.bos_id, spec.unk_id = 0, 1, 2, 3
    spec.pad_piece, spec.eos_piece, spec.bos_piece, spec.unk_piece = "<pad>", "<eos>", "<bos>", "<unk>"
    m.normalizer_spec.add_dummy_prefix = False
    pieces = [("<pad>", 3), ("<eos>", 3), ("<bos>", 3), ("<unk>", 2)] + [(f"<0x{b:02X}>", 6) for b in range(256)]
    pieces += [(w, 1) for w in ["▁", "a", "d", "e", "h", "l", "o", "r", "w", "he", "ll", "hell", "hello", "▁w", "or", "▁wor", "▁world"]]
    for i, (piece, kind) in enumerate(pieces):
        p = m.pieces.add()
        p.piece, p.type, p.score = piece, kind, -float(i)
    return m.SerializeToString()


def _tiny_gemma_config(vocab: int):
    from transformers import Gemma3TextConfig

    # Written out here (not read from the loader) so a wrong constant in the loader shows up.
    return Gemma3TextConfig(
        vocab_size=vocab, hidden_size=32, intermediate_size=48, num_hidden_layers=6, num_attention_heads=2,
        num_key_value_heads=1, head_dim=16, query_pre_attn_scalar=16, sliding_window=1024, rms_norm_eps=1e-6,
        rope_parameters={"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1e6},
                         "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}},
        pad_token_id=0, eos_token_id=1, bos_token_id=2)


@pytest.fixture(scope="module")
def gemma_files(tmp_path_factory):
    """(HF folder, ComfyUI-layout single file) holding the same random weights."""
    pytest.importorskip("sentencepiece", reason="the embedded Gemma tokenizer needs sentencepiece (requirements.txt)")
    pytest.importorskip("google.protobuf", reason="writing a tiny SentencePiece model needs protobuf")
    from tokenizers import Tokenizer, models
    from transformers import Gemma3ForCausalLM, PreTrainedTokenizerFast

    root = tmp_path_factory.mktemp("gemma")
    proto = _spiece_proto()
    torch.manual_seed(0)
    lm = Gemma3ForCausalLM(_tiny_gemma_config(vocab=300)).eval()
    with torch.no_grad():  # Gemma inits norms to 0 (scale 1): randomise them so the key mapping matters
        for name, p in lm.named_parameters():
            if "norm" in name:
                p.normal_(0, 0.3)
    folder = root / "hf"
    lm.save_pretrained(str(folder))
    vocab = {f"t{i}": i for i in range(300)}
    vocab.update({"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3})
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<unk>")),
                                  pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", unk_token="<unk>")
    tok.save_pretrained(str(folder))

    sd = {k: v for k, v in lm.state_dict().items() if k != "lm_head.weight"}  # ComfyUI stores no lm_head
    sd["vision_model.embeddings.patch_embedding.weight"] = torch.randn(4, 3, 2, 2)
    sd["multi_modal_projector.mm_input_projection_weight"] = torch.randn(4, 32)
    sd["spiece_model"] = torch.frombuffer(bytearray(proto), dtype=torch.uint8)
    single = root / "text_encoders" / "gemma_3_12B_it.safetensors"
    single.parent.mkdir()
    save_file({k: v.contiguous() for k, v in sd.items()}, str(single))
    return folder, single, sd


def _all_hidden(encoder, ids, mask):
    out = encoder.model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    return torch.stack(out.hidden_states)


def test_single_file_gemma_equals_hf_folder(gemma_files):
    folder, single, _ = gemma_files
    hf = load_gemma(folder, dtype=torch.float32)
    one = load_gemma(single, dtype=torch.float32)
    assert type(one.model).__name__ == "Gemma3TextModel"
    assert one.model.config.layer_types[5] == "full_attention"  # Gemma-3's 5 local : 1 global pattern
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(4, 300, (2, 12), generator=g)
    mask = torch.ones_like(ids)
    mask[1, :5] = 0  # left padding, as the encoder pads
    ids[1, :5] = 0
    want, got = _all_hidden(hf, ids, mask), _all_hidden(one, ids, mask)
    assert got.shape == want.shape == (7, 2, 12, 32)
    assert (got - want).abs().max().item() < 1e-5


def test_single_file_tokenizer_is_the_embedded_sentencepiece(gemma_files):
    import sentencepiece

    _, single, sd = gemma_files
    enc = load_gemma(single, dtype=torch.float32)
    sp = sentencepiece.SentencePieceProcessor(model_proto=sd["spiece_model"].numpy().tobytes())
    hidden, mask = gemma_hidden_states(enc, ["hello world", "hello"], max_tokens=10)
    assert hidden.shape == (2, 10, 32, 7)
    row = [2] + sp.encode("hello world")  # BOS, no EOS (ComfyUI Gemma3_12BTokenizer)
    assert len(row) < 10
    assert mask[0].tolist() == [0] * (10 - len(row)) + [1] * len(row)  # left-padded
    ids = enc.tokenizer(["hello world"], padding="max_length", max_length=10, truncation=True).input_ids
    assert ids[0].tolist() == [0] * (10 - len(row)) + row


def test_scaled_fp8_gemma_file_loads_dequantised(gemma_files, tmp_path):
    folder, single, sd = gemma_files
    q = dict(sd)
    q["scaled_fp8"] = torch.empty(0, dtype=FP8)
    for key in [k for k in sd if k.startswith("model.layers.") and k.endswith("_proj.weight")]:
        scale = sd[key].abs().amax() / FP8_MAX  # ComfyUI-style (not a power of two)
        q[key] = (sd[key] / scale).to(FP8)
        q[key[: -len(".weight")] + ".scale_weight"] = scale.reshape(())
        q[key[: -len(".weight")] + ".scale_input"] = torch.ones(())
    path = tmp_path / "gemma_3_12B_it_fp8_scaled.safetensors"
    save_file({k: v.contiguous() for k, v in q.items()}, str(path))
    enc = load_gemma(path, dtype=torch.float32)
    key = "model.layers.2.mlp.down_proj.weight"
    want = q[key].float() * q["model.layers.2.mlp.down_proj.scale_weight"]
    assert torch.equal(enc.model.layers[2].mlp.down_proj.weight, want)
    deq = {k: v for k, v in q.items() if not k.endswith(("scaled_fp8", ".scale_weight", ".scale_input"))}
    for k in deq:
        if deq[k].dtype == FP8:
            deq[k] = deq[k].float() * q[k[: -len(".weight")] + ".scale_weight"]
    save_file({k: v.contiguous() for k, v in deq.items()}, str(tmp_path / "dequantised.safetensors"))
    ids = torch.randint(4, 300, (1, 8), generator=torch.Generator().manual_seed(2))
    ones = torch.ones_like(ids)
    got = _all_hidden(enc, ids, ones)[-1]
    want = _all_hidden(load_gemma(tmp_path / "dequantised.safetensors", dtype=torch.float32), ids, ones)[-1]
    assert (got - want).abs().max().item() < 1e-5
    full = _all_hidden(load_gemma(folder, dtype=torch.float32), ids, ones)[-1]
    # fp8 rounding through 6 random layers, far below a different model's ~1.4
    assert 0 < ((got - full).norm() / full.norm()).item() < 0.5


def test_wrong_gemma_files_name_the_keys(gemma_files, tmp_path):
    _, _, sd = gemma_files
    bad = dict(sd)
    bad.pop("model.layers.1.post_feedforward_layernorm.weight")
    bad["model.layers.0.self_attn.rotary.weight"] = torch.zeros(2)
    bad["something_else.weight"] = torch.zeros(2)
    path = tmp_path / "bad.safetensors"
    save_file({k: v.contiguous() for k, v in bad.items()}, str(path))
    with pytest.raises(CheckpointError) as err:
        load_gemma(path, dtype=torch.float32)
    msg = str(err.value)
    for name in ("layers.1.post_feedforward_layernorm.weight", "layers.0.self_attn.rotary.weight", "something_else.weight"):
        assert name in msg

    no_tok = {k: v for k, v in sd.items() if k != "spiece_model"}
    path = tmp_path / "no_tokenizer.safetensors"
    save_file({k: v.contiguous() for k, v in no_tok.items()}, str(path))
    with pytest.raises(FileNotFoundError, match="spiece_model.*tokenizer.model"):
        load_gemma(path, dtype=torch.float32)
    (tmp_path / "tokenizer").mkdir()
    (tmp_path / "tokenizer" / "tokenizer.model").write_bytes(sd["spiece_model"].numpy().tobytes())
    assert load_gemma(path, dtype=torch.float32).tokenizer(["hello"]).input_ids[0, 0].item() == 2

    with pytest.raises(CheckpointError, match="not a Gemma-3 file"):
        save_file({"model.diffusion_model.proj_out.weight": torch.zeros(2, 2)}, str(tmp_path / "ltx.safetensors"))
        load_gemma(tmp_path / "ltx.safetensors", dtype=torch.float32)


# ------------------------------------------------------------------ fp8 LTX-2 releases


def _is_block_linear(key: str, v: torch.Tensor) -> bool:
    return key.startswith(BLOCKS) and key.endswith(".weight") and v.dim() == 2 and "scale_shift" not in key


def _quantise(sd: dict, style: str, also=()) -> dict:
    """The tiny checkpoint as a released fp8 file in one of the four layouts."""
    out = dict(sd)
    if style == "scaled_fp8":
        out["model.diffusion_model.scaled_fp8"] = torch.empty(0, dtype=FP8)
    for key, v in sd.items():
        if not (_is_block_linear(key, v) or key in also):
            continue
        layer = key[: -len(".weight")]
        if style == "plain":
            out[key] = v.to(FP8)
            continue
        scale = (v.abs().amax() / FP8_MAX).reshape(())
        out[key] = (v / scale).to(FP8)
        if style == "scaled_fp8":
            out[layer + ".scale_weight"] = scale
            out[layer + ".scale_input"] = torch.ones(())
        elif style == "ltx_core":  # Lightricks' releases: scalar scales, no format entry, e4m3 biases
            out[layer + ".weight_scale"] = scale
            out[layer + ".input_scale"] = torch.tensor(0.25)
            if layer + ".bias" in sd and key not in also:
                out[layer + ".bias"] = sd[layer + ".bias"].to(FP8)
        else:
            out[layer + ".weight_scale"] = scale
            out[layer + ".input_scale"] = torch.tensor(0.5)
            out[layer + ".comfy_quant"] = torch.tensor(list(json.dumps({"format": "float8_e4m3fn"}).encode()), dtype=torch.uint8)
    return out


def _dequantised(q: dict) -> dict:
    out = {}
    for key, v in q.items():
        if key.endswith(("scaled_fp8", ".scale_weight", ".weight_scale", ".scale_input", ".input_scale", ".comfy_quant")):
            continue
        if v.dtype == FP8 and key.endswith(".bias"):
            v = v.float()
        elif v.dtype == FP8:
            layer = key[: -len(".weight")]
            scale = q.get(layer + ".scale_weight", q.get(layer + ".weight_scale", torch.ones(())))
            v = v.float() * scale
        out[key] = v
    return out


def _ctx():
    g = torch.Generator().manual_seed(0)
    ctx = DubbingContext(torch.randn(1, 128, 2, 2, 3, generator=g), torch.randn(1, 8, 5, 16, generator=g), 24.0)
    text = TextContext(torch.randn(1, 4, 24, generator=g), torch.randn(1, 4, 24, generator=g))
    return ctx, text


@pytest.fixture(scope="module")
def tiny_ltx2():
    sd, meta = random_native_checkpoint(seed=11)
    ctx, text = _ctx()
    full, _ = dub_stage1(load_transformer(sd, meta), ctx, text, None, steps=2, seed=0)
    return sd, meta, full


@pytest.mark.parametrize("style", ["scaled_fp8", "comfy_quant", "ltx_core", "plain"])
def test_fp8_release_keeps_its_bytes_and_matches_the_dequantised_model(tiny_ltx2, style):
    sd, meta, full = tiny_ltx2
    proj_out = "model.diffusion_model.proj_out.weight"  # outside the blocks: multiplied out on load
    q = _quantise(sd, style, also=() if style == "plain" else (proj_out,))
    model = load_transformer(q, meta)
    layer = model.transformer.transformer_blocks[1].attn2.to_k
    assert isinstance(layer, Fp8Linear)
    key = BLOCKS + "1.attn2.to_k"
    assert torch.equal(layer.weight_fp8, q[key + ".weight"].view(torch.uint8))  # bit for bit
    scale = q.get(key + ".scale_weight", q.get(key + ".weight_scale", torch.ones(())))
    assert layer.weight_scale.dtype == torch.float32 and torch.equal(layer.weight_scale, scale)
    if style == "ltx_core":  # the e4m3 bias comes back as its exact float value
        assert q[key + ".bias"].dtype == FP8 and torch.equal(layer.bias, q[key + ".bias"].float())
    assert not isinstance(model.transformer.proj_out, Fp8Linear)
    assert model.transformer.proj_out.weight.dtype == torch.float32

    ctx, text = _ctx()
    got, _ = dub_stage1(model, ctx, text, None, steps=2, seed=0)
    want, _ = dub_stage1(load_transformer(_dequantised(q), meta), ctx, text, None, steps=2, seed=0)
    assert (got - want).abs().max().item() < 1e-4  # the same numbers: only the storage differs
    rel = ((got - full).norm() / full.norm()).item()
    assert 0 < rel < 0.05  # and fp8 rounding away from the unquantised model


def test_fp8_release_in_bf16_keeps_scales_in_float32(tiny_ltx2):
    sd, meta, _ = tiny_ltx2
    model = load_transformer(_quantise(sd, "scaled_fp8"), meta, dtype=torch.bfloat16)
    layer = model.transformer.transformer_blocks[0].ff.net[2]
    assert isinstance(layer, Fp8Linear) and layer.weight_scale.dtype == torch.float32
    assert model.transformer.proj_in.weight.dtype == torch.bfloat16


def test_unsupported_or_broken_fp8_files_name_the_keys(tiny_ltx2):
    sd, meta, _ = tiny_ltx2
    key = BLOCKS + "0.attn1.to_q"
    q = _quantise(sd, "comfy_quant")
    q[key + ".comfy_quant"] = torch.tensor(list(json.dumps({"format": "nvfp4"}).encode()), dtype=torch.uint8)
    with pytest.raises(CheckpointError, match=r"transformer_blocks\.0\.attn1\.to_q: quantisation format 'nvfp4'"):
        load_transformer(q, meta)

    q = _quantise(sd, "scaled_fp8")
    q[key + ".scale_weight"] = torch.ones(4)
    q.pop(BLOCKS + "1.ff.net.2.weight")
    q[BLOCKS + "0.attn1.to_k.weight"] = q[BLOCKS + "0.attn1.to_k.weight"].to(torch.float8_e5m2)
    with pytest.raises(CheckpointError) as err:
        load_transformer(q, meta)
    msg = str(err.value)
    assert "0.attn1.to_q.weight: scale of shape (4,)" in msg
    assert "1.ff.net.2.scale_weight: a weight scale without" in msg
    assert "0.attn1.to_k.weight: torch.float8_e5m2" in msg

    q = _quantise(sd, "plain")
    q.pop(BLOCKS + "1.attn1.to_out.0.bias")
    q[BLOCKS + "0.attn1.extra.weight"] = torch.zeros(2, 2, dtype=FP8)
    with pytest.raises(CheckpointError) as err:
        load_transformer(q, meta)
    assert "transformer_blocks.1.attn1.to_out.0.bias" in str(err.value)
    assert "transformer_blocks.0.attn1.extra.weight_fp8" in str(err.value)


def test_fp8_single_file_bundle_loads_every_part(tmp_path):
    from safetensors.torch import load_file, safe_open

    path = write_tiny_single_file(tmp_path / "bf16.safetensors", seed=3)
    sd = load_file(str(path))
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    connector = next(k for k in sd if "video_embeddings_connector" in k and k.endswith("attn1.to_q.weight"))
    q = _quantise(sd, "comfy_quant", also=(connector,))
    # The newer ComfyUI files may carry the layer formats in the header instead of .comfy_quant tensors.
    layers = {k[: -len(".comfy_quant")]: {"format": "float8_e4m3fn"} for k in q if k.endswith(".comfy_quant")}
    q = {k: v for k, v in q.items() if not k.endswith(".comfy_quant")}
    fp8_path = tmp_path / "ltx-2-fp8.safetensors"
    save_file({k: v.contiguous() for k, v in q.items()}, str(fp8_path),
              metadata={**meta, "_quantization_metadata": json.dumps({"format_version": "1.0", "layers": layers})})
    parts = load_ltx2_parts(fp8_path)
    assert all(p is not None for p in (parts.connectors, parts.video_vae, parts.audio_vae, parts.vocoder))
    assert isinstance(parts.transformer.transformer.transformer_blocks[0].attn1.to_v, Fp8Linear)
    ref = load_ltx2_parts(path)
    name = connector.split("video_embeddings_connector.")[1].replace("transformer_1d_blocks", "transformer_blocks")
    got = parts.connectors.video_connector.get_parameter(name)
    want = ref.connectors.video_connector.get_parameter(name)
    assert got.dtype == torch.float32 and 0 < (got - want).abs().max() <= want.abs().max() * 2 ** -4


# ------------------------------------------------------------------ loader nodes


def test_text_encoder_node_takes_the_comfyui_file_and_names_the_input(gemma_files, tmp_path):
    from soundstage.nodes.dubbing import load_text_encoder

    _, single, sd = gemma_files
    enc = load_text_encoder(str(single), "fp32", 16)
    assert type(enc.encoder.model).__name__ == "Gemma3TextModel"
    no_tok = {k: v for k, v in sd.items() if k != "spiece_model"}
    save_file({k: v.contiguous() for k, v in no_tok.items()}, str(tmp_path / "gemma.safetensors"))
    with pytest.raises(ValueError, match="Load LTX-2 Text Encoder: input 'text_encoder': .*tokenizer.model"):
        load_text_encoder(str(tmp_path / "gemma.safetensors"), "fp32", 16)


def test_model_node_loads_a_scaled_fp8_release(tmp_path):
    from safetensors.torch import load_file, safe_open

    from soundstage.nodes.dubbing import load_ltx2_av

    path = write_tiny_single_file(tmp_path / "bf16.safetensors", seed=4)
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    q = _quantise(load_file(str(path)), "scaled_fp8")
    save_file({k: v.contiguous() for k, v in q.items()}, str(tmp_path / "fp8.safetensors"), metadata=meta)
    model = load_ltx2_av(str(tmp_path / "fp8.safetensors"), "fp32")
    blocks = model.transformer.module.transformer.transformer_blocks
    assert isinstance(blocks[0].attn1.to_q, Fp8Linear)
    q[BLOCKS + "0.attn1.to_q.scale_weight"] = torch.ones(3)
    save_file({k: v.contiguous() for k, v in q.items()}, str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(ValueError, match="Load LTX-2 AV Model.*ckpt_name.*to_q.weight: scale of shape"):
        load_ltx2_av(str(tmp_path / "bad.safetensors"), "fp32")


@pytest.mark.parametrize("style", [None, "ltx_core"])
def test_fast_fp8_storage_turns_on_fp8_gemms_for_every_block_layer(tiny_ltx2, style):
    """``fp8_e4m3fn_fast`` (the loader's weight_storage): bf16 files are quantised and fp8 releases keep
    their bytes, and in both every block linear asks for the fp8 GEMM; nothing outside the blocks does."""
    from soundstage.models.just_dub_it.memory import store_fp8
    from soundstage.nodes.dubbing import WEIGHT_STORAGE

    assert "fp8_e4m3fn_fast" in WEIGHT_STORAGE
    sd, meta, _ = tiny_ltx2
    model = load_transformer(sd if style is None else _quantise(sd, style), meta).transformer
    converted = store_fp8(model, fp8_matmul=True)
    in_blocks = [m for m in model.transformer_blocks.modules() if isinstance(m, Fp8Linear)]
    assert in_blocks and all(m.fp8_matmul for m in in_blocks)
    assert (converted == len(in_blocks)) == (style is None)  # a release's layers were fp8 already
    assert not any(isinstance(m, torch.nn.Linear) for m in model.transformer_blocks.modules())
    assert not isinstance(model.proj_out, Fp8Linear)
