"""models/common: masked attention, RoPE, adaLN, strict checkpoint loading, meta-device builds."""
import pickle

import pytest
import torch
from torch import nn

from soundstage.models.common.attention import additive_mask, attention, causal_mask
from soundstage.models.common.checkpoint import (
    CheckpointError, build_and_load, compare_keys, drop_prefixes, flatten_tensors, fold_weight_norm, load_file,
    load_strict, rename_keys, select,
)
from soundstage.models.common.device import Placement, resolve_dtype
from soundstage.models.common.modulation import modulate
from soundstage.models.common.rope import inverse_frequencies


def reference_attention(q, k, v, allowed):
    scores = (q @ k.transpose(-1, -2)) / q.shape[-1] ** 0.5
    scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.softmax(scores, -1) @ v


def test_attention_matches_softmax_reference_with_masks():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 7, 8), torch.randn(2, 3, 7, 8)
    allowed = torch.rand(2, 1, 5, 7) > 0.3
    allowed[..., 0] = True
    ref = reference_attention(q, k, v, allowed)
    assert torch.allclose(attention(q, k, v, allowed), ref, atol=1e-5)
    assert torch.allclose(attention(q, k, v, additive_mask(allowed)), ref, atol=1e-5)


def test_fully_masked_rows_give_zero_not_nan_or_average():
    torch.manual_seed(0)
    q, k, v = torch.randn(1, 2, 4, 8), torch.randn(1, 2, 6, 8), torch.randn(1, 2, 6, 8) + 3.0
    allowed = torch.ones(1, 1, 4, 6, dtype=torch.bool)
    allowed[..., 2, :] = False  # query 2 may attend to nothing
    out = attention(q, k, v, allowed)
    assert torch.isfinite(out).all()
    assert out[:, :, 2].abs().max() == 0.0
    assert torch.allclose(out[:, :, [0, 1, 3]], reference_attention(q, k, v, allowed)[:, :, [0, 1, 3]], atol=1e-5)


def test_causal_mask_with_offset():
    m = causal_mask(2, 5, offset=3)
    assert m.tolist() == [[True, True, True, True, False], [True, True, True, True, True]]


def test_one_rope_frequency_table_serves_every_system():
    from soundstage.models.audiogen_omni.paapi import apply_rope as mmaudio_rope, rope_rotations
    from soundstage.models.mtv.rope import apply_rope as mtv_rope, rope_3d
    from soundstage.models.ovi.rope import RopeTable, audio_angles, video_angles

    inv = inverse_frequencies(16, dtype=torch.float64)
    assert torch.allclose(inv, torch.tensor([10000.0 ** (-i / 8) for i in range(8)], dtype=torch.float64))
    assert inverse_frequencies(9).shape == (4,)  # odd band: its last channel stays unrotated (SAT)
    torch.manual_seed(0)
    q, k = torch.randn(24), torch.randn(24)

    def relative(rotate):  # a rotation whose score depends on p_q - p_k only
        def score(pq, pk):
            return (rotate(q, pq) * rotate(k, pk)).sum()
        assert torch.allclose(score(3, 1), score(10, 8), atol=1e-4)
        assert not torch.allclose(score(3, 1), score(3, 2), atol=1e-3)

    relative(lambda x, p: mmaudio_rope(x.view(1, 1, 1, 24).expand(1, 1, p + 1, 24),
                                       rope_rotations(p + 1, 24))[0, 0, p])
    relative(lambda x, p: RopeTable(audio_angles(p + 1, 24, scale=1.0)).apply(
        x.view(1, 1, 1, 24).expand(1, p + 1, 1, 24).contiguous())[0, p, 0])
    cos, sin = rope_3d(12, 1, 1, 32)
    q, k = q[:16].repeat(2), k[:16].repeat(2)
    relative(lambda x, p: mtv_rope(x.view(1, 1, 1, 32), cos[p:p + 1], sin[p:p + 1])[0, 0, 0])
    assert video_angles(2, 3, 4, 24).shape == (24, 12)


def test_adaln_modulation():
    x = torch.randn(2, 5, 4)
    assert torch.equal(modulate(x, torch.zeros(2, 4), torch.zeros(2, 4)), x)
    assert torch.allclose(modulate(x, torch.ones(2, 4), torch.ones(2, 4)), 2 * x + 1)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(3, 4)
        self.b = nn.Conv1d(4, 2, 3)


def test_strict_load_names_every_problem():
    sd = Tiny().state_dict()
    sd.pop("a.bias")
    sd["extra.weight"] = torch.zeros(1)
    sd["b.weight"] = torch.zeros(2, 4, 5)
    with pytest.raises(CheckpointError) as err:
        load_strict(Tiny(), sd, context="tiny test")
    msg = str(err.value)
    assert "tiny test" in msg and "a.bias" in msg and "extra.weight" in msg and "b.weight" in msg


def test_key_tools():
    flat = flatten_tensors({"state_dict": {"model": {"x": torch.ones(1)}, "disc": {"y": torch.ones(1)}}, "step": 3})
    assert set(flat) == {"state_dict.model.x", "state_dict.disc.y"}
    inner = select({**flat, "other.z": torch.ones(1)}, "state_dict.")
    assert set(inner) == {"model.x", "disc.y"}  # prefix stripped, keys outside it left out
    assert set(drop_prefixes(inner, ["disc."])) == {"model.x"}
    assert set(rename_keys(inner, [(r"^model\.", "net."), (r"\.x$", ".w")])) == {"net.w", "disc.y"}
    report = compare_keys({"a": (2, 3)}, {"a": (3, 2), "b": (1,)})
    assert not report.ok and report.unexpected == ["b"] and report.mismatched == [("a", (3, 2), (2, 3))]


def test_fold_weight_norm_matches_torch():
    conv = nn.utils.weight_norm(nn.Conv1d(3, 5, 4))
    sd = conv.state_dict()
    folded = fold_weight_norm(sd)
    assert set(folded) == {"weight", "bias"}
    assert torch.allclose(folded["weight"], conv.weight.detach(), atol=1e-6)
    with pytest.raises(CheckpointError, match="incomplete"):
        fold_weight_norm({"x.weight_g": torch.ones(1, 1, 1)})


def test_load_file_formats_and_pickle_safety(tmp_path):
    from safetensors.torch import save_file

    t = {"w": torch.arange(4.0)}
    save_file(t, str(tmp_path / "a.safetensors"))
    assert torch.equal(load_file(tmp_path / "a.safetensors")["w"], t["w"])
    torch.save({"state_dict": t}, tmp_path / "b.ckpt")
    assert torch.equal(load_file(tmp_path / "b.ckpt")["state_dict.w"], t["w"])

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(tmp_path / "c.pt", "wb") as f:
        pickle.dump({"x": Evil()}, f)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_file(tmp_path / "c.pt")
    (tmp_path / "d.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="d.safetensors"):
        load_file(tmp_path / "d.safetensors")
    with pytest.raises(CheckpointError, match="not found"):
        load_file(tmp_path / "missing.safetensors")


def test_build_on_meta_adopts_file_tensors():
    src = Tiny().state_dict()
    model = build_and_load(Tiny, src, context="tiny")
    assert not any(p.is_meta for p in model.parameters())
    assert model.a.weight.data_ptr() == src["a.weight"].data_ptr()  # no second copy of the weights
    half = build_and_load(Tiny, src, context="tiny", dtype=torch.bfloat16)
    assert half.a.weight.dtype == torch.bfloat16


def test_placement_dtypes_and_one_vocabulary():
    from soundstage.models.common.device import canonical_name
    from soundstage.nodes.common import check_names, compute_device, placement_for

    cpu = torch.device("cpu")
    assert resolve_dtype("default", cpu) == torch.float32 and resolve_dtype("bf16", cpu) == torch.bfloat16
    # Older saved workflows carry these: they map onto today's names.
    assert resolve_dtype("auto", cpu) == torch.float32 and resolve_dtype("float16", cpu) == torch.float16
    assert [canonical_name(v) for v in ("bfloat16", "fp8_e4m3", "fp8_e4m3_fast", True, False)] == \
        ["bf16", "fp8_e4m3fn", "fp8_e4m3fn_fast", "block_swap", "none"]
    assert check_names(precision="auto", offload=True) is True
    assert "unknown value" in check_names(precision="fp7")
    with pytest.raises(ValueError, match="unknown precision"):
        resolve_dtype("fp7", cpu)
    p = placement_for("fp32")  # the device ComfyUI chose (the runner's headless)
    assert p.device == compute_device() and p.dtype == torch.float32
    assert isinstance(p, Placement)


def test_plain_data_globals_only_when_allowed(tmp_path):
    import argparse

    torch.save({"module": {"w": torch.ones(2)}, "args": argparse.Namespace(lr=1e-4)}, tmp_path / "ds.pt")
    with pytest.raises(CheckpointError):
        load_file(tmp_path / "ds.pt")
    sd = load_file(tmp_path / "ds.pt", allowed_globals=[argparse.Namespace])
    assert set(sd) == {"module.w"}
