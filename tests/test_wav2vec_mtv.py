"""MTV's wav2vec2 feature path against the golden fixture, plus its pure helpers."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from conftest import golden_files
from soundstage.models.common.checkpoint import CheckpointError
from soundstage.models.mtv.wav2vec_features import (
    config_from_state_dict,
    load_wav2vec,
    pad_to_clip_grid,
    wav2vec_features,
    window_frames,
)
from transformers import Wav2Vec2Config

FILES = golden_files("wav2vec_interp")
NOT_CONFIG = ("transformers_version", "torch_dtype", "_name_or_path")


def _case(path):
    meta = json.loads(path.with_suffix(".json").read_text())
    t = load_file(str(path))
    sd = {k: v for k, v in t.items() if not k.startswith(("input.", "output."))}
    return meta, t, sd


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
@pytest.mark.parametrize("config_source", ["json", "weights"])
def test_features_match_reference(golden_dir, path, config_source):
    meta, t, sd = _case(path)
    raw = meta["constructor"]["Wav2Vec2Config"]
    if config_source == "json":
        cfg = Wav2Vec2Config(**{k: v for k, v in raw.items() if k not in NOT_CONFIG})
    else:  # shapes + the head count (not readable from shapes)
        cfg = config_from_state_dict(sd, num_attention_heads=raw["num_attention_heads"])
    model = load_wav2vec(sd, cfg)
    feats, inter = wav2vec_features(
        model, t["input.wav"], fps=meta["inputs"]["fps"], clip_length=meta["inputs"]["clip_length"]
    )
    for name, tol in meta["tolerance"].items():
        ref = t[f"output.{name}"]
        assert inter[name].shape == ref.shape, name
        assert (inter[name] - ref).abs().max().item() <= tol, name
    assert feats.windows.shape[0] == t["output.features_windowed"].shape[0]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_strict_load_names_missing_key(golden_dir, path):
    meta, t, sd = _case(path)
    sd = dict(sd)
    del sd["wav2vec2.encoder.layers.0.attention.k_proj.weight"]
    cfg = config_from_state_dict(sd | {"wav2vec2.encoder.layers.0.attention.k_proj.weight": torch.zeros(1)},
                                 num_attention_heads=2)
    with pytest.raises(CheckpointError, match="encoder.layers.0.attention.k_proj.weight"):
        load_wav2vec(sd, cfg)


def test_clip_grid_padding_follows_mtv():
    # 1.1 s at 24 fps -> 27 frames -> padded to 49 (1 + 48k); MTV pads (49-27) * (16000 // 24) samples.
    wav = torch.ones(17600)
    padded, seq_len = pad_to_clip_grid(wav, 24.0, 49)
    assert seq_len == 49
    assert padded.shape[-1] == 17600 + 22 * 666
    assert padded[17600:].abs().sum() == 0
    already, n = pad_to_clip_grid(torch.ones(16000 * 2), 24.0, 49)  # 48 frames -> 49
    assert n == 49 and already.shape[-1] == 32000 + 666


def test_window_clamps_at_edges():
    x = torch.arange(6.0)[:, None]
    w = window_frames(x)[..., 0]
    assert w.shape == (6, 5)
    assert w[0].tolist() == [0, 0, 0, 1, 2]
    assert w[3].tolist() == [1, 2, 3, 4, 5]
    assert w[5].tolist() == [3, 4, 5, 5, 5]
