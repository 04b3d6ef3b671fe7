"""The MMDiT benchmark script runs end to end (tiny config, CPU) and reports a finite sample."""
from __future__ import annotations

import json

import torch

from helpers import load_benchmark


def _bench():
    return load_benchmark("bench_mmdit")


def test_bench_tiny_cpu(capsys):
    mod = _bench()
    before = torch.get_num_threads()
    try:
        rc = mod.main(["--preset", "tiny", "--seconds", "2", "--steps", "2", "--repeats", "1", "--warmup", "0",
                       "--threads", "1"])
    finally:
        torch.set_num_threads(before)
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and report["finite"] and report["latent_frames"] == 63 and report["median_s"] > 0


def test_sampling_loop_never_reads_the_device_back():
    """What --cuda-graph captures (batched CFG, a length mask, text padding, device timesteps) run on the
    meta device: any host read of a tensor (.item(), bool(), nonzero, data-dependent shapes) would raise here,
    as it would break a CUDA graph capture."""
    from soundstage.models.audiogen_omni.sampler import sample
    from soundstage.models.common.flow_matching import euler_timesteps

    mod = _bench()
    cfg = mod.TINY
    with torch.device("meta"):
        net = mod.MMDiT(cfg).eval()
    n = net.latent_len_for(2.0)
    with torch.no_grad(), torch.device("meta"):
        text_mask = torch.ones(1, cfg.text_seq_len, dtype=torch.bool)
        cond = net.encode_conditions(batch=1, latent_len=n, clip_f=torch.randn(1, 16, cfg.clip_dim),
                                     sync_f=torch.randn(1, 48, cfg.sync_dim),
                                     text_f=torch.randn(1, cfg.text_seq_len, cfg.text_dim), text_mask=text_mask)
        uncond = net.empty_conditions(1, n, clip_len=16, sync_len=48)
        mask = torch.ones(2, n, dtype=torch.bool)
        out = sample(net, cond, uncond, torch.randn(2, n, cfg.latent_dim), num_steps=2, cfg_scale=4.5,
                     latent_mask=mask, batched_cfg=True, timesteps=euler_timesteps(2).to("meta"))
    assert out.shape == (2, n, cfg.latent_dim) and out.device.type == "meta"
