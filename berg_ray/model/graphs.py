"""CUDA graphs of the recurrent loop (opt-in: ``EncodingModel.set_cuda_graphs(True)``, CUDA only, default off).

Per frame the recurrent cell launches ~20 small kernels (``Recurrent._step``), and at small batches their launch
cost, not their work, sets the time. A :class:`LoopGraph` captures the whole loop over a chunk of T frames
(``Recurrent.loop``) once per (batch, frames, dtype, autocast) into a ``torch.cuda.CUDAGraph`` and replays it for
every later chunk of that shape: one launch per chunk.

A graph replays fixed memory, so the loop is a pure function of static tensors that the LoopGraph owns: its
``StepBuffers`` (the feed-forward part of the recurrent input is written into ``buffers.feed`` by
``Recurrent._feed`` before each replay, the hidden states are read from ``buffers.hiddens`` after it) and the LSTM
state ``hidden``/``cell`` (copied in before and out after each replay, 4 copies of B x 1.5 MB in float32). The
intermediate tensors of the loop live in the graph's private memory pool. ``run`` with ``capture=False`` calls the
same function eagerly: the CPU tests check that it equals ``Recurrent.forward``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from berg_ray.errors import KernelsError
from berg_ray.model.recurrent import POSITIONS, REC_SLOTS, REC_WIDTH, S, Recurrent

WARMUP_RUNS = 2  # eager runs on a side stream before capture (cuBLAS/cuDNN workspaces and algorithm choice)


def capture(fn: Callable[[], None], warmup: int = WARMUP_RUNS) -> "torch.cuda.CUDAGraph":
    """Capture ``fn`` (a function of static CUDA tensors only) into a CUDA graph, after ``warmup`` eager runs."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(warmup):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph


class LoopGraph:
    """The recurrent loop over ``frames`` frames of ``batch`` videos, captured once and replayed.

    Attributes:
        buffers: the StepBuffers the graph reads and writes (``buffers.feed`` in, ``buffers.hiddens`` out).
        hidden, cell: static LSTM state (32, 32, B*P) in the state's dtype (float32).
        frames: the chunk length the graph runs.
        graph: the captured graph, or None when run eagerly (``capture=False``: tests, on any device).
    """

    def __init__(self, recurrent: Recurrent, batch: int, frames: int, dtype: torch.dtype,
                 capture_graph: bool = True) -> None:
        device = recurrent.feed_w.device
        if capture_graph and device.type != "cuda":
            raise KernelsError(f"CUDA graphs need a CUDA GPU; the {device.type.upper()} device cannot capture them; "
                               "leave cuda_graphs off")
        self.frames = frames
        self.buffers = recurrent.buffers(batch, frames, dtype)
        self.buffers.feed.zero_()  # the warm-up runs read it before the first real feed
        self.hidden, self.cell = (recurrent.feed_w.new_zeros(REC_SLOTS, REC_WIDTH, batch * POSITIONS) for _ in "hc")
        feed = self.buffers.feed.view(frames, S * 256, batch, POSITIONS)
        self._loop = lambda: recurrent.loop(feed, self.hidden, self.cell, self.buffers)
        self.graph = capture(self._loop) if capture_graph else None

    def run(self, hidden: Tensor, cell: Tensor) -> None:
        """Run the loop on the feed already in ``buffers.feed`` from state (hidden, cell) (32, 32, B*P), which are
        updated in place; the hidden state after each frame is left in ``buffers.hiddens``."""
        self.hidden.copy_(hidden)
        self.cell.copy_(cell)
        if self.graph is None:
            self._loop()
        else:
            self.graph.replay()
        hidden.copy_(self.hidden)
        cell.copy_(self.cell)


def graph_key(batch: int, frames: int, dtype: torch.dtype, device: torch.device) -> tuple:
    """Cache key of a LoopGraph: the shapes, the activations' dtype and whether autocast is on (it changes the
    kernels recorded)."""
    return batch, frames, dtype, torch.is_autocast_enabled(device.type)
