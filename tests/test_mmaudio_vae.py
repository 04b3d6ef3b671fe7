"""MMAudio mel VAE: golden fixture (v1-16.pth layout), real-size key maps, load-time folding."""
from __future__ import annotations

import json

import pytest
import torch
from conftest import golden_files, golden_parts

from soundstage.models.common.checkpoint import CheckpointError, compare_keys, meta_device, model_shapes
from soundstage.models.common.codecs.mmaudio_vae import (
    VAE_16K,
    VAE_44K,
    MelVAE,
    MelVAEConfig,
    config_from_state_dict,
    convert_checkpoint,
    fold_mp_weights,
    load_mel_vae,
)

VAE_FIXTURES = golden_files("mmaudio_vae_vocoder", "vae*.safetensors")


def _split(path):
    return golden_parts(path)


def _check(got: dict, outputs: dict, meta: dict) -> None:
    assert set(got) == set(outputs)
    for name, ref in outputs.items():
        tol = meta["tolerance"][name]
        assert got[name].shape == ref.shape, name
        err = float((got[name].float() - ref).abs().max())
        assert err <= tol, f"{name}: max abs diff {err:.3g} > {tol}"


def _run(vae: MelVAE, inputs: dict) -> dict:
    with torch.no_grad():
        mean, logvar = vae.encode(inputs["mel"])
        return {"mel": vae.decode(inputs["latent"]), "posterior_mean": mean, "posterior_logvar": logvar}


@pytest.mark.parametrize("path", VAE_FIXTURES, ids=lambda p: p.stem)
def test_golden(golden_dir, path):
    ckpt, inputs, outputs, meta = _split(path)
    vae = load_mel_vae(ckpt)
    ctor = next(v for v in meta["constructor"].values() if isinstance(v, dict) and "data_dim" in v)
    assert (vae.config.mel_bins, vae.config.latent_channels, vae.config.hidden_channels) == (
        ctor["data_dim"], ctor["embed_dim"], ctor["hidden_dim"],
    )
    _check(_run(vae, inputs), outputs, meta)


@pytest.mark.parametrize("path", VAE_FIXTURES, ids=lambda p: p.stem)
def test_golden_needs_the_fold(golden_dir, path):
    # Loading the raw MP weights without folding must visibly break the decode: the fold is real.
    ckpt, inputs, outputs, _ = _split(path)
    vae = MelVAE(config_from_state_dict(ckpt))
    vae.load_state_dict(ckpt)
    with torch.no_grad():
        mel = vae.decode(inputs["latent"])
    assert (mel - outputs["mel"]).abs().max() > 1e-2


@pytest.mark.parametrize("path", VAE_FIXTURES, ids=lambda p: p.stem)
def test_golden_diffusers_layout(golden_dir, path):
    # diffusers MMAudioVAE files hold folded weights under ``vae.`` plus the mel front-end buffers.
    ckpt, inputs, outputs, meta = _split(path)
    folded = fold_mp_weights(ckpt)
    diffusers_sd = {f"vae.{k}": v for k, v in folded.items()}
    diffusers_sd["mel_converter.mel_basis"] = torch.zeros(ckpt["data_mean"].shape[1], 513)
    diffusers_sd["mel_converter.hann_window"] = torch.zeros(1024)
    _check(_run(load_mel_vae(diffusers_sd), inputs), outputs, meta)


@pytest.mark.parametrize(
    "manifest, expected",
    [("mmaudio_vae_16k.json", VAE_16K), ("mmaudio_vae_44k.json", VAE_44K)],
)
def test_real_checkpoint_layout(golden_dir, manifest, expected):
    man = json.loads((golden_dir / "manifests" / manifest).read_text())
    sd = {k: torch.empty(v["shape"], device="meta") for k, v in man["keys"].items()}
    converted = convert_checkpoint(sd)
    config = config_from_state_dict(converted)
    assert config == expected
    assert (config.mel_bins, config.latent_channels, config.hidden_channels) == (
        man["config"]["data_dim"], man["config"]["embed_dim"], man["config"]["hidden_dim"],
    )
    with meta_device():
        vae = MelVAE(config)
    report = compare_keys(model_shapes(vae), {k: tuple(v.shape) for k, v in converted.items()})
    assert report.ok, report.describe(limit=10)
    assert len(converted) == man["num_tensors"]


def test_tiny_roundtrip_shapes_and_posterior():
    torch.manual_seed(0)
    config = MelVAEConfig(mel_bins=12, latent_channels=4, hidden_channels=8, channel_multipliers=(1, 2), layers_per_block=1)
    raw = {k: torch.randn_like(v) for k, v in MelVAE(config).state_dict().items()}
    raw["data_std"] = raw["data_std"].abs() + 0.5
    vae = load_mel_vae(raw)
    assert vae.config == config
    mel = torch.randn(2, 12, 10)
    mean, logvar = vae.encode(mel)
    assert mean.shape == logvar.shape == (2, 4, 5)
    assert float(logvar.min()) >= -30 and float(logvar.max()) <= 20
    assert vae.decode(mean).shape == (2, 12, 10)
    z1 = vae.sample(mean, logvar, torch.Generator().manual_seed(1))
    z2 = vae.sample(mean, logvar, torch.Generator().manual_seed(1))
    assert torch.equal(z1, z2) and not torch.equal(z1, mean)
    with pytest.raises(ValueError, match="multiple of 2"):
        vae.encode(torch.randn(1, 12, 9))


def test_wrong_file_names_every_problem():
    sd = {k: v for k, v in MelVAE(MelVAEConfig(12, 4, 8, (1, 2), 1)).state_dict().items()}
    sd.pop("decoder.conv_out.weight")
    sd["encoder.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as err:
        load_mel_vae(sd)
    assert "decoder.conv_out.weight" in str(err.value) and "encoder.extra.weight" in str(err.value)
    with pytest.raises(CheckpointError, match="neither encoder"):
        load_mel_vae({"foo.weight": torch.zeros(1)})


def test_foreign_keys_are_reported_not_dropped():
    sd = dict(MelVAE(MelVAEConfig(12, 4, 8, (1, 2), 1)).state_dict())
    sd["latent_rot"] = torch.zeros(3)
    with pytest.raises(CheckpointError, match="latent_rot"):
        load_mel_vae(sd)
