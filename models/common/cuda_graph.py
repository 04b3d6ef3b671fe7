"""One sampler step captured as a CUDA graph and replayed every step.

A 1.5B-parameter MMDiT forward is ~1,000 small kernels whose launches cost more than their
arithmetic (benchmarks/roofline.py: 8 s of audio at 25 steps is 42 TFLOP, ~0.05 s at peak, against a
0.6 s target). Replaying a captured step removes the launch and Python overhead while the loop
around it stays in Python, so per-step progress and interruption keep working.
"""
from __future__ import annotations

from typing import Callable

import torch

Step = Callable[..., torch.Tensor]


class StepGraph:
    """``fn(*args)`` captured once for fixed shapes; calls copy the args in and replay.

    The returned tensor is the graph's static output: it is overwritten by the next call, so use it
    before calling again (an Euler update does). ``fn`` must be capturable: no host syncs, no
    CPU->GPU copies, and every tensor it reads besides ``args`` fixed for the graph's life.
    """

    def __init__(self, fn: Step, *example_args: torch.Tensor, warmup: int = 2):
        self.fn = fn  # keeps alive what the captured kernels read besides the args (e.g. RoPE tables)
        self.static_args = [a.detach().clone() for a in example_args]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        # Warm-up off the capture stream: lazy inits (cuBLAS handles, autotuning) must not be captured.
        with torch.cuda.stream(side):
            for _ in range(warmup):
                fn(*self.static_args)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_out = fn(*self.static_args)

    def load(self, first: int, values: list[torch.Tensor]) -> None:
        """Set the args from index ``first`` on without replaying (inputs fixed for a whole run)."""
        for static, value in zip(self.static_args[first:], values):
            static.copy_(value)

    def __call__(self, *args: torch.Tensor) -> torch.Tensor:
        """Replay with the leading args set to ``args``; the others keep their loaded values."""
        self.load(0, list(args))
        self.graph.replay()
        return self.static_out


def weight_addresses(module: torch.nn.Module) -> tuple[int, ...]:
    """Where the module's tensors live: a graph replays reads from these addresses, so a model that
    was offloaded and brought back (new addresses) needs a new capture."""
    return tuple(t.data_ptr() for t in (*module.parameters(), *module.buffers()))


class GraphCache:
    """The latest :class:`StepGraph` of one model, kept while its key (shapes, settings, weight
    addresses) is unchanged, so repeated generations of one length skip the capture."""

    def __init__(self):
        self.key: object = None
        self.graph: StepGraph | None = None

    def get(self, key: object, fn: Step, *example_args: torch.Tensor) -> StepGraph:
        if self.graph is None or self.key != key:
            self.graph = None  # release the old graph's memory pool before capturing the next
            self.graph, self.key = StepGraph(fn, *example_args), key
        return self.graph
