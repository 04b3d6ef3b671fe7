"""Ovi prompt format and umt5 text encoding (tiny random encoder, local tokenizer)."""
from __future__ import annotations

import pytest
import torch

from soundstage.models.common.checkpoint import CheckpointError
from soundstage.models.ovi.text import (Umt5TextEncoder, build_prompt, clean_whitespace,
                                        load_tokenizer, load_umt5, to_hf_umt5)
from soundstage.testing.ovi import tiny_umt5_state_dict, write_tiny_tokenizer


def test_prompt_builder_formats_per_variant():
    p = build_prompt("A man at a desk.", ["Hello there.", " "], "Calm male voice, keyboard clicks.")
    assert p == "A man at a desk. <S>Hello there.<E> <AUDCAP>Calm male voice, keyboard clicks.<ENDAUDCAP>"
    q = build_prompt("A man.", ["Hi."], "Quiet room.", variant="960x960_10s")
    assert q == "A man. <S>Hi.<E> Audio: Quiet room."
    assert build_prompt("Only video.") == "Only video."
    with pytest.raises(ValueError):
        build_prompt("x", variant="1080p")


def test_clean_whitespace():
    assert clean_whitespace("a \n\t b &amp;amp; c ") == "a b & c"


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    tok = load_tokenizer(write_tiny_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer.json"))
    model = load_umt5(tiny_umt5_state_dict(seed=3))
    return Umt5TextEncoder(model, tok, text_len=12)


def test_encode_cuts_to_token_count_and_ignores_padding(encoder):
    short, long_ = "w1 w2", "w3 w4 w5 w6 w7"
    both = encoder.encode([short, long_, ""])
    assert [x.shape[0] for x in both] == [3, 6, 1]  # words + </s>
    alone = encoder.encode([short])[0]
    torch.testing.assert_close(both[0], alone, atol=1e-5, rtol=0)
    assert (both[0] - both[1][:3]).abs().max() > 1e-3
    assert encoder.encode(["w1 " * 40])[0].shape[0] == 12  # truncated to text_len


def test_wan_pth_naming_loads_identically(encoder, tmp_path):
    wan = tiny_umt5_state_dict(seed=3, wan_naming=True)
    assert "blocks.0.ffn.gate.0.weight" in wan and "token_embedding.weight" in wan
    path = tmp_path / "umt5.pth"
    torch.save(wan, path)
    enc2 = Umt5TextEncoder(load_umt5(path), encoder.tokenizer, text_len=12)
    torch.testing.assert_close(enc2.encode(["w9 w10"])[0], encoder.encode(["w9 w10"])[0], atol=0, rtol=0)


def test_bad_umt5_file_is_rejected():
    sd = to_hf_umt5(tiny_umt5_state_dict())
    sd.pop("encoder.block.1.layer.1.DenseReluDense.wo.weight")
    with pytest.raises(CheckpointError, match="wo.weight"):
        load_umt5(sd)
