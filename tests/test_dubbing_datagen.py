"""JUST-DUB-IT data generation: effective latent masks and masked inpainting."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from soundstage.models.just_dub_it.datagen import (
    effective_latent_mask,
    inpainting_states,
    language_switch_prompt,
    lip_masks,
    split_frames,
)
from soundstage.models.just_dub_it.sampler import euler_sample
from soundstage.models.just_dub_it.schedule import ltx2_sigmas


def _blurry_encoder(frames):
    # Stand-in VAE: 8x8 patches, but with a 3x3 receptive field over neighbouring patches.
    x = F.avg_pool2d(frames.mean(1, keepdim=True), 8)  # [F, 1, h, w]
    x = F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
    return x.permute(1, 0, 2, 3).unsqueeze(0).repeat(1, 4, 1, 1, 1)  # [1, 4, F, h, w]


def test_effective_mask_covers_the_spread_not_just_the_patch():
    frames = torch.zeros(2, 3, 64, 64)
    frames[:, :, 24:32, 24:32] = 1.0  # exactly one 8x8 patch (latent 3,3)
    naive = F.avg_pool2d(frames[:, :1], 8)[:, 0] > 0
    mask = effective_latent_mask(_blurry_encoder, frames, tau=0.05)
    assert mask.shape == (2, 8, 8) and naive.sum() == 2
    assert mask.sum() == 2 * 9  # the 3x3 neighbourhood the encoder leaks into
    assert mask[:, 2:5, 2:5].all() and not mask[:, 6:, :].any()
    assert effective_latent_mask(_blurry_encoder, torch.zeros(2, 3, 64, 64)).sum() == 0


def test_inpainting_keeps_unmasked_tokens_and_regenerates_audio():
    g = torch.Generator().manual_seed(0)
    video, audio = torch.randn(1, 4, 2, 2, 2, generator=g), torch.randn(1, 2, 3, 4, generator=g)
    mask = torch.zeros(2, 2, 2, dtype=torch.bool)
    mask[:, 0, 0] = True
    v, a = inpainting_states(video, audio, mask, 25.0, torch.randn(1, 8, 4, generator=g), torch.randn(1, 3, 8, generator=g))
    assert v.denoise_mask.sum() == 2 and a.denoise_mask.sum() == 3
    target_v, target_a = torch.full((1, 8, 4), 7.0), torch.full((1, 3, 8), -3.0)
    out_v, out_a = euler_sample([v, a], ltx2_sigmas(4), lambda lat, s: [target_v, target_a])
    keep = ~mask.flatten()
    torch.testing.assert_close(out_v.latent[0, keep], v.clean[0, keep])
    torch.testing.assert_close(out_v.latent[0, ~keep], target_v[0, ~keep], rtol=0, atol=1e-5)
    torch.testing.assert_close(out_a.latent, target_a, rtol=0, atol=1e-5)


def test_prompt_and_halves():
    p = language_switch_prompt("A chef talks in a kitchen.", "English", "Hello there.", "French", "Bonjour.")
    assert "first says in English: \"Hello there.\"" in p and "switches to French and says: \"Bonjour.\"" in p
    first, second = split_frames(121)
    assert (first.stop - first.start - 1) % 8 == 0 and second.stop == 121 and first.stop <= second.start + 1
    with pytest.raises(ValueError):
        split_frames(9)


def test_lip_masks_names_the_optional_dependency():
    try:
        import mediapipe  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="mediapipe==0.10.21"):
            lip_masks(torch.zeros(1, 32, 32, 3))
    else:
        assert lip_masks(torch.zeros(1, 32, 32, 3)).sum() == 0  # no face, no mask
