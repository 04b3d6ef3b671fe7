"""The MMDiT sampler's per-step CUDA graph: its cache bookkeeping (on CPU, with the capture replaced
by a recorder) and, where a GPU exists, replay against the eager loop."""
from __future__ import annotations

import pytest
import torch

from soundstage.models.audiogen_omni import sampler as sampler_mod
from soundstage.models.audiogen_omni.mmdit import MMDiT, MMDiTConfig
from soundstage.models.common import cuda_graph

CFG = MMDiTConfig(latent_dim=8, clip_dim=16, sync_dim=16, text_dim=16, hidden_dim=32, depth=2, fused_depth=1,
                  num_heads=2, text_seq_len=4, latent_seq_len=40, clip_seq_len=16, sync_seq_len=48)


def _net(device="cpu") -> MMDiT:
    torch.manual_seed(0)
    net = MMDiT(CFG)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.05)
    return net.to(device).eval().requires_grad_(False)


def _inputs(net: MMDiT, seconds: float, device="cpu"):
    n = net.latent_len_for(seconds)
    g = torch.Generator().manual_seed(1)
    rnd = lambda *s: torch.randn(*s, generator=g).to(device)  # noqa: E731
    cond = net.encode_conditions(batch=1, latent_len=n, clip_f=rnd(1, 8, CFG.clip_dim), sync_f=rnd(1, 24, CFG.sync_dim),
                                 text_f=rnd(1, CFG.text_seq_len, CFG.text_dim))
    uncond = net.empty_conditions(1, n, clip_len=8, sync_len=24)
    mask = torch.ones(1, n, dtype=torch.bool, device=device)
    mask[:, n - 3:] = False  # a padded tail: the mask is a graph input too
    return cond, uncond, rnd(1, n, CFG.latent_dim), mask


class RecordingGraph(cuda_graph.StepGraph):
    """A capture stand-in on CPU: the real StepGraph input handling, with "replay" calling ``fn`` on
    the static buffers as the captured kernels would; counts captures."""

    captures = 0

    class _Replay:
        def __init__(self, owner):
            self.owner = owner

        def replay(self):
            self.owner.static_out = self.owner.fn(*self.owner.static_args)

    def __init__(self, fn, *example_args):
        type(self).captures += 1
        self.fn, self.static_args = fn, [a.clone() for a in example_args]
        self.graph = self._Replay(self)


@torch.no_grad()
def test_graph_inputs_and_cache_keys(monkeypatch):
    monkeypatch.setattr(cuda_graph, "StepGraph", RecordingGraph)
    RecordingGraph.captures = 0
    net = _net()

    def run(seconds, cfg_scale=4.5, seed_shift=0.0):
        cond, uncond, noise, mask = _inputs(net, seconds)
        cond.clip = cond.clip + seed_shift  # another clip, same shapes
        eager = sampler_mod.sample(net, cond, uncond, noise, num_steps=3, cfg_scale=cfg_scale, latent_mask=mask)
        pair = sampler_mod.Conditions.cat(cond, uncond)
        rots = net.rotations(noise.shape[1], cond.clip.shape[1], cond.text.shape[1], cond.text_rope_from, "cpu")
        velocity = sampler_mod._graphed_velocity(net, pair, torch.cat([mask, mask]), rots, cfg_scale, noise)
        graphed = sampler_mod.euler_sample(velocity, noise.float(), num_steps=3)
        return eager, graphed

    eager, graphed = run(2.0)
    assert torch.equal(eager, graphed) and RecordingGraph.captures == 1
    eager, graphed = run(2.0, seed_shift=1.0)  # new conditions flow in through the static inputs
    assert torch.equal(eager, graphed) and RecordingGraph.captures == 1
    run(2.5)  # another length: new shapes
    assert RecordingGraph.captures == 2
    run(2.5, cfg_scale=3.0)  # the guidance scale is baked into the capture
    assert RecordingGraph.captures == 3
    for p in net.parameters():  # weights moved (an offload and reload): the old addresses are stale
        p.data = p.data.clone()
    run(2.5, cfg_scale=3.0)
    assert RecordingGraph.captures == 4


@torch.no_grad()
def test_cuda_graph_flag_is_eager_off_cuda():
    net = _net()
    cond, uncond, noise, mask = _inputs(net, 2.0)
    a = sampler_mod.sample(net, cond, uncond, noise, num_steps=3, latent_mask=mask)
    b = sampler_mod.sample(net, cond, uncond, noise, num_steps=3, latent_mask=mask, cuda_graph=True)
    assert torch.equal(a, b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@torch.no_grad()
def test_cuda_graph_replay_matches_eager_and_is_reused():
    net = _net("cuda")
    cond, uncond, noise, mask = _inputs(net, 2.0, "cuda")
    eager = sampler_mod.sample(net, cond, uncond, noise, num_steps=5, latent_mask=mask)
    first = sampler_mod.sample(net, cond, uncond, noise, num_steps=5, latent_mask=mask, cuda_graph=True)
    graph = sampler_mod._GRAPHS[net].graph
    cond2, _, noise2, _ = _inputs(net, 2.0, "cuda")
    cond2.clip = cond2.clip * -1
    eager2 = sampler_mod.sample(net, cond2, uncond, noise2, num_steps=5, latent_mask=mask)
    second = sampler_mod.sample(net, cond2, uncond, noise2, num_steps=5, latent_mask=mask, cuda_graph=True)
    torch.testing.assert_close(first, eager, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(second, eager2, rtol=1e-4, atol=1e-4)
    assert sampler_mod._GRAPHS[net].graph is graph  # same shapes and weights: no second capture
    for p in net.parameters():  # reloaded elsewhere (cloned while the old copy lives: new addresses)
        p.data = p.data.clone()
    third = sampler_mod.sample(net, cond2, uncond, noise2, num_steps=5, latent_mask=mask, cuda_graph=True)
    assert sampler_mod._GRAPHS[net].graph is not graph
    torch.testing.assert_close(third, eager2, rtol=1e-4, atol=1e-4)
