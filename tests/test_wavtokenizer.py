"""WavTokenizer port: golden numerics against the reference, and the real checkpoint layouts."""
from __future__ import annotations

import json

import pytest
import torch
from conftest import golden_files, golden_parts

from soundstage.models.common.checkpoint import CheckpointError, compare_keys, meta_device, model_shapes
from soundstage.models.common.codecs.wavtokenizer import (
    WavTokenizer,
    WavTokenizerConfig,
    convert_wavtokenizer_state_dict,
    load_wavtokenizer,
)


def _split(path):
    return golden_parts(path)


@pytest.mark.parametrize("path", golden_files("wavtokenizer"), ids=lambda p: p.stem)
def test_golden_encode_decode(golden_dir, path):
    ckpt, inputs, outputs, meta = _split(path)
    model = load_wavtokenizer(ckpt)
    with torch.no_grad():
        got = {"encoder_out": model.encode_features(inputs["wav"])}
        got["features"], got["codes"] = model.encode(inputs["wav"])
        got["wav_out"] = model.decode(got["features"])
        got["features_from_codes"] = model.codes_to_features(outputs["codes"])
        got["wav_from_codes"] = model.decode(got["features_from_codes"])
    assert torch.equal(got["codes"], outputs["codes"])
    for name, ref in outputs.items():
        tol = meta["tolerance"][name]  # every stored output is compared, none left out
        assert got[name].shape == ref.shape, name
        if tol == "exact":
            assert torch.equal(got[name], ref), name
        else:
            assert (got[name] - ref).abs().max().item() <= float(tol), name


@pytest.mark.parametrize("path", golden_files("wavtokenizer"), ids=lambda p: p.stem)
def test_config_read_from_weights_matches_fixture_constructor(golden_dir, path):
    ckpt, _, outputs, meta = _split(path)
    cfg = WavTokenizerConfig.from_state_dict(convert_wavtokenizer_state_dict(ckpt))
    ctor = meta["constructor"]
    assert cfg.ratios == ctor["EncodecFeatures"]["dowmsamples"]
    assert cfg.dimension == ctor["VocosBackbone"]["input_channels"]
    assert cfg.backbone_dim == ctor["VocosBackbone"]["dim"]
    assert cfg.intermediate_dim == ctor["VocosBackbone"]["intermediate_dim"]
    assert cfg.num_layers == ctor["VocosBackbone"]["num_layers"]
    assert cfg.n_fft == ctor["ISTFTHead"]["n_fft"]
    assert cfg.hop_length == ctor["ISTFTHead"]["hop_length"]
    assert cfg.bins == ctor["EncodecFeatures"]["vq_bins"]
    assert outputs["wav_out"].shape[-1] == cfg.hop_length * outputs["codes"].shape[-1]


@pytest.mark.parametrize("path", golden_files("wavtokenizer"), ids=lambda p: p.stem)
def test_lightning_checkpoint_layout_drops_gan_state(golden_dir, path, tmp_path):
    ckpt, inputs, outputs, _ = _split(path)
    # The released file is a Lightning .ckpt: tensors under "state_dict", plus discriminators/losses.
    noise = {"multiperioddisc.discriminators.0.convs.0.weight_g": torch.ones(2, 1, 1, 1),
             "melspec_loss.mel_spec.spectrogram.window": torch.ones(4)}
    file = tmp_path / "wavtokenizer.ckpt"
    torch.save({"state_dict": {**ckpt, **noise}, "global_step": 7}, file)
    model = load_wavtokenizer(file)
    with torch.no_grad():
        _, codes = model.encode(inputs["wav"])
    assert torch.equal(codes, outputs["codes"])


def test_missing_key_is_named(golden_dir):
    paths = golden_files("wavtokenizer")
    if not paths:
        pytest.skip("no wavtokenizer fixture")
    ckpt, *_ = _split(paths[0])
    ckpt.pop("backbone.final_layer_norm.bias")
    with pytest.raises(CheckpointError, match="backbone.final_layer_norm.bias"):
        load_wavtokenizer(ckpt)


@pytest.mark.parametrize("rate", [75, 40])
def test_real_configs_match_manifest(golden_dir, rate):
    manifest = json.loads((golden_dir / "manifests" / f"wavtokenizer_24k_{rate}tok.json").read_text())
    with meta_device():
        file_like = {k: torch.empty(v["shape"]) for k, v in manifest["keys"].items()}
        converted = convert_wavtokenizer_state_dict(file_like)
        model = WavTokenizer(WavTokenizerConfig.preset(rate))
    report = compare_keys(model_shapes(model), {k: tuple(v.shape) for k, v in converted.items()})
    assert report.ok, report.describe(limit=10)
    # The sizes read back from the real layout are the preset's.
    assert WavTokenizerConfig.from_state_dict(converted) == WavTokenizerConfig.preset(rate)
    assert manifest["config"]["head"]["init_args"]["hop_length"] == WavTokenizerConfig.preset(rate).hop_length


def test_roundtrip_shapes_tiny_random():
    cfg = WavTokenizerConfig(ratios=[4, 2], dimension=8, n_filters=2, bins=16, backbone_dim=32,
                             intermediate_dim=16, num_layers=1, n_fft=32, hop_length=8)
    torch.manual_seed(0)
    model = WavTokenizer(cfg).eval()
    wav = torch.randn(2, 8 * 5)
    with torch.no_grad():
        feats, codes = model.encode(wav)
        out = model.decode_codes(codes[0])
    assert codes.shape == (1, 2, 5) and codes.dtype == torch.long
    assert int(codes.max()) < cfg.bins
    assert out.shape == (2, 40)
    assert cfg.token_rate == 3000



@pytest.mark.parametrize("cfg", [
    WavTokenizerConfig(ratios=[6, 5, 5, 4], dimension=64, n_filters=2, bins=8, backbone_dim=32, intermediate_dim=16,
                       num_layers=3, n_fft=2400, hop_length=600),
    WavTokenizerConfig(ratios=[8, 5, 4, 2], dimension=16, n_filters=4, bins=8, lstm_layers=1, backbone_dim=64,
                       intermediate_dim=16, num_layers=1),
], ids=["40tok_wide_out", "75tok_one_lstm"])
def test_config_from_weights_roundtrips(cfg):
    # dimension == 2 * last encoder width (first case) must not pass for a downsampling conv.
    assert WavTokenizerConfig.from_state_dict(WavTokenizer(cfg).state_dict()) == cfg
