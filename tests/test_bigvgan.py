"""BigVGAN vocoders: golden v1 16 kHz fixture, real v1/v2 key maps, v1/v2 output stages."""
from __future__ import annotations

import json

import pytest
import torch
from conftest import golden_files
from safetensors.torch import load_file

from soundstage.models.common.checkpoint import CheckpointError, compare_keys, meta_device, model_shapes
from soundstage.models.common.codecs.bigvgan import (
    BIGVGAN_V1_16K,
    BIGVGAN_V2_44K,
    BigVGAN,
    BigVGANConfig,
    config_from_state_dict,
    convert_checkpoint,
    load_bigvgan,
)

VOCODER_FIXTURES = golden_files("mmaudio_vae_vocoder", "bigvgan*.safetensors")
TINY = dict(upsample_initial_channel=16, upsample_rates=(2, 2), upsample_kernel_sizes=(4, 4), resblock_kernel_sizes=(3,),
            resblock_dilation_sizes=((1, 3, 5),))


def _weight_norm_split(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Plain weights -> the ``weight_g``/``weight_v`` spelling of the released files."""
    out = {}
    for k, v in sd.items():
        if k.endswith(".weight") and v.dim() == 3 and "filter" not in k:
            base = k[: -len(".weight")]
            # Filter norms like the fixture's: about 0.6, and 4 for conv_post so the output reaches past +-1.
            scale = 4.0 if base == "conv_post" else 0.6
            out[base + ".weight_g"] = scale * (1 + 0.1 * torch.randn(v.shape[0], 1, 1))
            out[base + ".weight_v"] = v
        else:
            out[k] = v
    return out


def _tiny_sd(config: BigVGANConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    sd = {}
    for k, v in BigVGAN(config).state_dict().items():
        sd[k] = v if k.endswith("filter") else torch.randn_like(v) * (0.3 if v.dim() == 1 else 0.5)
    return _weight_norm_split(sd)


def _constructor(meta: dict) -> dict:
    return next(v for v in meta["constructor"].values() if isinstance(v, dict) and "upsample_rates" in v)


@pytest.mark.parametrize("path", VOCODER_FIXTURES, ids=lambda p: p.stem)
def test_golden(golden_dir, path):
    d = load_file(str(path))
    meta = json.loads(path.with_suffix(".json").read_text())
    ckpt = {k: v for k, v in d.items() if not k.startswith(("input.", "output."))}
    h = _constructor(meta)
    # Rates and dilations are not in the weights: take them from the fixture's config.
    model = load_bigvgan(
        ckpt,
        upsample_rates=tuple(h["upsample_rates"]),
        resblock_dilation_sizes=tuple(tuple(d) for d in h["resblock_dilation_sizes"]),
    )
    assert model.config.upsample_initial_channel == h["upsample_initial_channel"]
    assert list(model.config.upsample_kernel_sizes) == h["upsample_kernel_sizes"]
    assert list(model.config.resblock_kernel_sizes) == h["resblock_kernel_sizes"]
    assert model.config.use_tanh_at_final and model.config.use_bias_at_final
    with torch.no_grad():
        wav = model(d["input.mel"])
    ref = d["output.wav"]
    assert wav.shape == ref.shape == (d["input.mel"].shape[0], 1, d["input.mel"].shape[-1] * model.config.hop_length)
    err = float((wav - ref).abs().max())
    assert err <= meta["tolerance"]["wav"], f"max abs diff {err:.3g}"


@pytest.mark.parametrize(
    "manifest, expected",
    [("bigvgan_v1_16k_mmaudio.json", BIGVGAN_V1_16K), ("bigvgan_v2_44khz_128band_512x.json", BIGVGAN_V2_44K)],
)
def test_real_checkpoint_layout(golden_dir, manifest, expected):
    man = json.loads((golden_dir / "manifests" / manifest).read_text())
    sd = {f"generator.{k}": torch.empty(v["shape"], device="meta") for k, v in man["keys"].items()}
    converted = convert_checkpoint(sd)
    config = config_from_state_dict(converted)
    assert config == expected
    assert list(config.upsample_rates) == man["config"]["upsample_rates"]
    with meta_device():
        model = BigVGAN(config)
    report = compare_keys(model_shapes(model), {k: tuple(v.shape) for k, v in converted.items()})
    assert report.ok, report.describe(limit=10)


def test_v1_and_v2_output_stages():
    mel = torch.randn(2, 80, 5) * 2
    v1 = load_bigvgan(_tiny_sd(BigVGANConfig(**TINY)))
    assert v1.config.use_bias_at_final and v1.config.use_tanh_at_final and v1.config.hop_length == 4
    v2_sd = _tiny_sd(BigVGANConfig(**TINY))
    v2_sd.pop("conv_post.bias")
    v2 = load_bigvgan(v2_sd)
    assert not v2.config.use_bias_at_final and not v2.config.use_tanh_at_final
    with torch.no_grad():
        a, b = v1(mel), v2(mel)
    assert a.shape == b.shape == (2, 1, 20)
    with torch.no_grad():
        pre1 = v1.conv_post(v1.activation_post(_stages(v1, mel)))
        pre2 = v2.conv_post(v2.activation_post(_stages(v2, mel)))
    # v1 ends in tanh (MMAudio bigvgan models.py); v2 clamps (use_tanh_at_final false).
    assert bool((pre2.abs() > 1).any()) and bool((pre1.abs() > 1).any())
    assert torch.allclose(a, torch.tanh(pre1), atol=1e-6)
    assert torch.equal(b, pre2.clamp(-1, 1))


def _stages(model: BigVGAN, mel: torch.Tensor) -> torch.Tensor:
    x = model.conv_pre(mel)
    for i, up in enumerate(model.ups):
        x = up[0](x)
        blocks = model.resblocks[i * model.num_kernels : (i + 1) * model.num_kernels]
        x = sum(b(x) for b in blocks) / model.num_kernels
    return x


def test_weight_norm_spellings_agree():
    sd = _tiny_sd(BigVGANConfig(**TINY))
    param = {}
    for k, v in sd.items():
        if k.endswith((".weight_g", ".weight_v")):
            which = "original0" if k.endswith("_g") else "original1"
            param[k[: -len(".weight_g")] + ".parametrizations.weight." + which] = v
        else:
            param[k] = v
    mel = torch.randn(1, 80, 4)
    with torch.no_grad():
        a = load_bigvgan(sd)(mel)
        b = load_bigvgan(param)(mel)
    assert torch.equal(a, b)
    # Folding uses g * v / ||v||: the stored g is the folded filter norm.
    folded = convert_checkpoint(sd)
    g = sd["conv_pre.weight_g"].flatten()
    assert torch.allclose(folded["conv_pre.weight"].flatten(1).norm(dim=1), g.abs(), rtol=1e-5)


def test_callback_and_errors():
    model = load_bigvgan(_tiny_sd(BigVGANConfig(**TINY)))
    seen = []
    model(torch.randn(1, 80, 3), callback=lambda i, n: seen.append((i, n)))
    assert seen == [(1, 2), (2, 2)]
    with pytest.raises(CheckpointError, match="conv_pre"):
        load_bigvgan({"foo.bias": torch.zeros(1)})
    broken = _tiny_sd(BigVGANConfig(**TINY))
    broken.pop("resblocks.0.convs2.1.bias")
    with pytest.raises(CheckpointError, match="resblocks.0.convs2.1.bias"):
        load_bigvgan(broken)


@pytest.mark.parametrize("path", VOCODER_FIXTURES, ids=lambda p: p.stem)
def test_golden_chain_from_vae_latent(golden_dir, path):
    """Latent -> our VAE decode -> our vocoder, when the fixture's mel is the VAE fixture's output."""
    from soundstage.models.common.codecs.mmaudio_vae import load_mel_vae

    vae_path = path.with_name(path.name.replace("bigvgan", "vae"))
    if not vae_path.is_file():
        pytest.skip(f"no VAE fixture {vae_path.name} beside {path.name}")
    v, b = load_file(str(vae_path)), load_file(str(path))
    if not torch.equal(v["output.mel"], b["input.mel"]):
        pytest.skip("this vocoder fixture's mel is not the VAE fixture's output")
    meta = json.loads(path.with_suffix(".json").read_text())
    h = _constructor(meta)
    vae = load_mel_vae({k: t for k, t in v.items() if not k.startswith(("input.", "output."))})
    voc = load_bigvgan({k: t for k, t in b.items() if not k.startswith(("input.", "output."))},
                       upsample_rates=tuple(h["upsample_rates"]),
                       resblock_dilation_sizes=tuple(tuple(d) for d in h["resblock_dilation_sizes"]))
    with torch.no_grad():
        wav = voc(vae.decode(v["input.latent"]))
    assert float((wav - b["output.wav"]).abs().max()) <= meta["tolerance"]["wav"]
