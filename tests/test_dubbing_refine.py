"""JUST-DUB-IT optional stage 2: 2x latent upsampling + distilled-LoRA refinement, audio frozen."""
from __future__ import annotations

import json

import torch

from soundstage.pipelines.just_dub_it import DubbingContext, TextContext, dub_stage2
from soundstage.testing.just_dub_it import random_native_checkpoint, write_tiny_upsampler
from soundstage.models.just_dub_it.transformer import load_transformer
from soundstage.models.just_dub_it.upsampler import load_latent_upsampler, upsampler_kwargs


def test_stage2_two_distilled_steps_keep_first_frame_and_start_from_upsampled():
    sd, meta = random_native_checkpoint(seed=3)
    model = load_transformer(sd, meta)
    g = torch.Generator().manual_seed(0)
    ctx = DubbingContext(torch.randn(1, 128, 2, 4, 6, generator=g), torch.randn(1, 8, 5, 16, generator=g), 25.0,
                         torch.randn(1, 128, 1, 4, 6, generator=g))
    up = torch.randn(1, 128, 2, 4, 6, generator=g)
    text = TextContext(torch.randn(1, 4, 24, generator=g), torch.randn(1, 4, 24, generator=g))
    calls = []
    out = dub_stage2(model, ctx, up, torch.randn(1, 8, 5, 16, generator=g), text, seed=1,
                     callback=lambda i, n: calls.append((i, n)))
    assert calls == [(1, 2), (2, 2)]  # [0.909375, 0.725, 0.421875, 0] without its first value
    assert torch.equal(out[:, :, :1], ctx.first_frame_latent)
    # Re-noised to sigma 0.725 only: the refined frames stay correlated with the upsampled latent.
    corr = torch.corrcoef(torch.stack([out[:, :, 1:].flatten(), up[:, :, 1:].flatten()]))[0, 1]
    assert corr > 0.1
    other = dub_stage2(model, ctx, up, torch.randn(1, 8, 5, 16, generator=g), text, seed=1)
    assert (other - out).abs().max() > 1e-4  # the frozen audio still steers the video through v2a/a2v


def test_upsampler_loads_from_metadata_and_doubles_space(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = write_tiny_upsampler(tmp_path / "up.safetensors")
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    kw = upsampler_kwargs(meta)
    assert kw["mid_channels"] == 32 and kw["num_blocks_per_stage"] == 1 and kw["use_rational_resampler"] is False
    model = load_latent_upsampler(load_file(str(path)), meta)
    with torch.no_grad():
        out = model(torch.randn(1, 128, 2, 3, 4))
    assert out.shape == (1, 128, 2, 6, 8)
    assert json.loads(meta["config"])["spatial_scale"] == 2.0


def test_refine_node_function_runs_end_to_end(tmp_path):
    from soundstage.compat import InputImpl, Types
    from soundstage.testing.just_dub_it import write_tiny_gemma, write_tiny_single_file
    from soundstage.nodes.dubbing import (
        decode_dubbed, encode_context, load_ltx2_av, load_text_encoder, load_upsampler, refine_dubbing, sample_dubbing,
    )

    model = load_ltx2_av(str(write_tiny_single_file(tmp_path / "m.safetensors", seed=2)), "fp32")
    text = load_text_encoder(str(write_tiny_gemma(tmp_path / "gemma")), "fp32", 16)
    up = load_upsampler(str(write_tiny_upsampler(tmp_path / "up.safetensors")), "fp32")
    t = torch.arange(int(16000 * 9 / 24)) / 16000
    audio = {"waveform": (0.2 * torch.sin(2 * torch.pi * 220 * t)).view(1, 1, -1), "sample_rate": 16000}
    video = InputImpl.VideoFromComponents(Types.VideoComponents(images=torch.rand(9, 64, 64, 3), frame_rate=24, audio=audio))
    clip = encode_context(model, video, None, 0, 0, 0)
    stage1 = sample_dubbing(model, text, clip, "she says hello in spanish", "", steps=1, cfg=1.0, seed=0)
    refined = refine_dubbing(model, text, up, clip, stage1, "she says hello in spanish", seed=0)
    assert refined.video.shape == (1, 128, 2, 4, 4) and torch.equal(refined.audio, stage1.audio)
    out, dubbed_audio = decode_dubbed(model, refined)
    comps = out.get_components()
    assert comps.images.shape == (9, 128, 128, 3)
    assert abs(dubbed_audio["waveform"].shape[-1] / dubbed_audio["sample_rate"] - 9 / 24) < 1e-3
