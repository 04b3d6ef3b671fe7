"""MTV side parts: Hybrid Demucs overlap-add, T5 prompt encoding, CogVideoX VAE loading."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from soundstage.models.common.checkpoint import CheckpointError
from soundstage.models.mtv.demix import HDEMUCS_SOURCES, separate, stems_from_sources


class QuarterSplit(nn.Module):
    """Stand-in separator: each of the 4 sources is a quarter of the (normalised) mixture."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return (x * self.w / 4)[:, None].expand(-1, len(HDEMUCS_SOURCES), -1, -1)


def test_separate_overlap_add_reconstructs_the_mixture():
    g = torch.Generator().manual_seed(0)
    wav = torch.randn(2, 44100 * 3, generator=g) * 0.3 + 0.01
    sources = separate(QuarterSplit(), wav, 44100, segment_s=1.0, overlap_s=0.25)
    total = sum(sources.values())
    assert total.shape == wav.shape
    # Demucs adds the mixture mean back to every source (demucs/separate.py), so the sum holds 3 extra.
    assert (total - wav - 3 * wav.mean(0).mean()).abs().max() < 1e-4
    stems = stems_from_sources(sources)
    assert torch.allclose(stems["music"], 3 * sources["vocals"], atol=1e-5)
    assert stems["effects"].abs().sum() == 0


def test_separate_keeps_mono_and_rate():
    wav = torch.sin(torch.linspace(0, 300, 16000))[None]
    sources = separate(QuarterSplit(), wav, 16000, segment_s=0.5, overlap_s=0.1)
    assert sources["vocals"].shape == (1, 16000)
    total = sum(sources.values()) - 3 * wav.mean()
    assert (total - wav)[:, 200:-200].abs().max() < 2e-2  # two resamplings; edges excluded


def test_t5_encoding_pads_to_226_without_mask(tmp_path):
    from soundstage.models.mtv.text import encode_prompts, load_t5_encoder, load_tokenizer
    from soundstage.testing.mtv import tiny_t5_state_dict, write_tiny_tokenizer

    model = load_t5_encoder(tiny_t5_state_dict(d_model=16))
    tok = load_tokenizer(write_tiny_tokenizer(tmp_path / "tokenizer.json"))
    a = encode_prompts(model, tok, ["w1 w2 w3"])
    b = encode_prompts(model, tok, ["w1 w2 w4"])
    assert a.shape == (1, 226, 16)
    # No attention mask: pad positions see the prompt, so they differ between prompts.
    assert (a[0, 10:] - b[0, 10:]).abs().max() > 1e-6


def test_t5_strict_load_names_missing_key():
    from soundstage.models.mtv.text import load_t5_encoder
    from soundstage.testing.mtv import tiny_t5_state_dict

    sd = tiny_t5_state_dict(d_model=16)
    sd.pop("encoder.block.1.layer.1.DenseReluDense.wo.weight")
    with pytest.raises(CheckpointError, match="encoder.block.1.layer.1.DenseReluDense.wo.weight"):
        load_t5_encoder(sd)


def test_vae_config_from_weights_and_sat_layout_refused():
    from diffusers import AutoencoderKLCogVideoX

    from soundstage.testing.mtv import tiny_vae_config
    from soundstage.models.mtv.vae import encode_frames, load_cogvideox_vae, vae_config_from_state_dict

    ref = AutoencoderKLCogVideoX(**tiny_vae_config())
    cfg = vae_config_from_state_dict(ref.state_dict())
    assert tuple(cfg["block_out_channels"]) == tuple(ref.config.block_out_channels)
    for key in ("latent_channels", "layers_per_block", "norm_num_groups"):
        assert cfg[key] == ref.config[key], key
    vae = load_cogvideox_vae(ref.state_dict())
    z = encode_frames(vae, torch.rand(5, 16, 24, 3), torch.Generator().manual_seed(0))
    assert z.shape == (1, 2, 4, 2, 3)  # 5 frames -> 2 latents (the chunk carry), 8x spatial
    with pytest.raises(CheckpointError, match="3d-vae"):
        vae_config_from_state_dict({"encoder.down.0.block.0.conv1.weight": torch.zeros(1)})
