"""The recurrent loop as a function of static buffers (berg_ray/model/graphs.py), on CPU.

A CUDA graph cannot be captured here, so the tests run the function a graph captures eagerly
(``LoopGraph(capture_graph=False)``): through its own static buffers and state copies it must equal
``Recurrent.forward`` bit for bit, alone and inside the core's passes (several chunk shapes, graphs reused across
calls). Requesting graphs on CPU raises a KernelsError naming the fix.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import berg_ray.model.core as core
from berg_ray.errors import KernelsError
from berg_ray.model import device_plan, graphs
from berg_ray.model.network import EncodingModel
from berg_ray.model.recurrent import POSITIONS, to_columns

from .support import fixture_network

SCANS = ("session-8_scan-5", "session-4_scan-7")


@pytest.fixture(scope="module")
def model(fixture_berg_dir) -> EncodingModel:
    return fixture_network(fixture_berg_dir, SCANS)


def test_eager_loop_graph_equals_recurrent_forward(model):
    recurrent = model.core.recurrent
    gen = torch.Generator().manual_seed(0)
    batch, frames = 2, 3
    features = torch.randn(batch * frames * POSITIONS, 512, generator=gen)
    drive = 0.1 * torch.randn(batch, frames, 4, 256, generator=gen)
    hidden, cell = (0.5 * torch.randn(batch, 32, 32, POSITIONS, generator=gen) for _ in "hc")
    results = []
    with torch.inference_mode():
        for graph in (None, graphs.LoopGraph(recurrent, batch, frames, torch.float32, capture_graph=False)):
            state = (to_columns(hidden), to_columns(cell))
            out = torch.empty(batch, frames, 512, 16, 24)
            buffers = recurrent.buffers(batch, frames, torch.float32) if graph is None else graph.buffers
            recurrent(features, drive, state, buffers, out, graph)
            results.append((out, *state))
    for want, got in zip(*results):
        assert torch.equal(got, want)
    assert not torch.equal(results[0][1], to_columns(hidden))  # the state did move


@pytest.mark.slow  # 3 model runs (~15 s; the recurrent-only equality above stays quick); --quick leaves it out
def test_core_passes_with_eager_loop_graphs_equal_the_plain_loop(model, fixture_dir, monkeypatch):
    """1 video x 4 frames in passes of 3 frames (chunk shapes 3 and 1: two graphs), run twice (graphs reused with
    a new state): the same responses as without graphs, bit for bit."""
    videos = torch.from_numpy(np.load(fixture_dir / "stimuli.npy"))[:1, :4]
    scans = list(SCANS[1:])
    monkeypatch.setattr(core, "pass_shape", lambda device, batch: (batch, 3))
    with torch.inference_mode():
        want, _ = model.forward_features(videos, scans)
        monkeypatch.setattr(core, "LoopGraph", lambda rec, b, f, d, capture: graphs.LoopGraph(rec, b, f, d, False))
        model.core.cuda_graphs = True  # set directly: set_cuda_graphs refuses the CPU
        try:
            first, state = model.forward_features(videos[:, :3], scans, state=None)
            second, _ = model.forward_features(videos[:, 3:], scans, state)
            again, _ = model.forward_features(videos, scans)
            keys = sorted(key[:2] for key in model.core.loop_graphs)
        finally:
            model.core.cuda_graphs = False
            model.core.loop_graphs.clear()
    assert keys == [(1, 1), (1, 3)]
    assert torch.equal(torch.cat([first, second], dim=1), want) and torch.equal(again, want)


def test_graphs_are_refused_on_cpu(model):
    with pytest.raises(KernelsError, match="cuda_graphs needs a CUDA GPU.*leave cuda_graphs off"):
        model.set_cuda_graphs(True)
    assert model.cuda_graphs is False and model.set_cuda_graphs(False).cuda_graphs is False
    with pytest.raises(KernelsError, match="CUDA graphs need a CUDA GPU"):
        graphs.LoopGraph(model.core.recurrent, 1, 2, torch.float32)
    with pytest.raises(KernelsError, match="must be True or False"):
        device_plan.check_cuda_graphs("yes", torch.device("cuda"))
    assert device_plan.check_cuda_graphs(True, torch.device("cuda")) is True


def test_graphs_stay_off_when_autograd_records():
    x = torch.zeros(2, requires_grad=True)
    assert device_plan.graphed_loop(True, x.detach()) and not device_plan.graphed_loop(True, x)
    assert not device_plan.graphed_loop(False, x.detach())
