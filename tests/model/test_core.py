"""Behaviour of the core and EncodingModel on CPU with the reference fixture's (random) weights: chunking, batching,
pass shapes and state handling give the same responses; the bf16 autocast path runs and stays close."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import berg_ray.model.core as core
import berg_ray.model.recurrent as recurrent
from berg_ray.model.network import EncodingModel

from .support import fixture_network

SCANS = ("session-8_scan-5", "session-4_scan-7")
TOL = 1e-6


def max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b).abs() / b.abs()).max())


@pytest.fixture(scope="module")
def model(fixture_berg_dir) -> EncodingModel:
    return fixture_network(fixture_berg_dir, SCANS)


@pytest.fixture(scope="module")
def videos(fixture_dir) -> torch.Tensor:
    return torch.from_numpy(np.load(fixture_dir / "stimuli.npy"))[:2, :8]  # uint8 (2, 8, 144, 256)


def one_pass(model: EncodingModel, frames: torch.Tensor, scan_ids: list[str]) -> list[torch.Tensor]:
    with torch.inference_mode():
        features, _ = model.forward_features(frames, scan_ids)
        return [model.forward_readout(features[b:b + 1], sid)[0] for b, sid in enumerate(scan_ids)]


@pytest.fixture(scope="module")
def reference(model, videos) -> list[torch.Tensor]:
    """One-pass responses of both videos through scans (8/5, 4/7)."""
    return one_pass(model, videos, list(SCANS))


@pytest.mark.parametrize("chunk_frames", [1, 5, 7])
def test_chunked_equals_one_pass(model, videos, reference, chunk_frames):
    frames = 4 if chunk_frames == 1 else videos.shape[1]  # the model is causal: a prefix has the same responses
    with torch.inference_mode():
        chunks = list(model.encode_chunks(videos[:, :frames], list(SCANS), chunk_frames=chunk_frames))
    assert [start for start, _ in chunks] == list(range(0, frames, chunk_frames))
    for b in range(2):
        assert max_rel(torch.cat([responses[b] for _, responses in chunks]), reference[b][:frames]) <= TOL


def test_batch_mixing_scans_equals_separate_runs(model, videos):
    short = videos[:, :4]
    mixed = one_pass(model, short, list(SCANS))
    for b, sid in enumerate(SCANS):
        alone = one_pass(model, short[b:b + 1], [sid])[0]
        assert mixed[b].shape == (4, model.n_units(sid))
        assert max_rel(mixed[b], alone) <= TOL


@pytest.mark.parametrize("shape", [(2, 3), (1, 1), (2, 16)])
def test_feedforward_pass_shape_does_not_change_results(model, videos, reference, monkeypatch, shape):
    """The CPU default runs one video per pass; accelerators run several (the multi-video path)."""
    monkeypatch.setattr(core, "pass_shape", lambda device, batch: shape)
    for got, want in zip(one_pass(model, videos[:, :5], list(SCANS)), reference):
        assert max_rel(got, want[:5]) <= TOL


@pytest.mark.parametrize("shape", [(2, 3), (2, 16)])
def test_accelerator_row_ops_do_not_change_results(model, videos, reference, monkeypatch, shape):
    """The accelerator path (all videos in one pass and in one grouped 1x1 map each) computed on the CPU."""
    monkeypatch.setattr(core, "pass_shape", lambda device, batch: shape)
    monkeypatch.setattr(core, "batched_row_ops", lambda device: True)
    monkeypatch.setattr(recurrent, "batched_row_ops", lambda device: True)
    for got, want in zip(one_pass(model, videos[:, :5], list(SCANS)), reference):
        assert max_rel(got, want[:5]) <= TOL


def test_readout_in_slices_is_bit_identical(model, videos, monkeypatch):
    """A readout over more frames than fit READOUT_SAMPLE_BYTES runs in slices and changes no bit (the accelerators'
    grid_sample path, run here on CPU)."""
    import berg_ray.model.readout as readout

    monkeypatch.setattr(readout, "readout_by_cells", lambda device: False)
    with torch.inference_mode():
        features, _ = model.forward_features(videos[:, :3], [SCANS[0]] * 2)
        whole = model.forward_readout(features, SCANS[0])
        units = torch.tensor([0, 5, 17])
        whole_subset = model.forward_readout(features, SCANS[0], units)
        monkeypatch.setattr(readout, "READOUT_SAMPLE_BYTES", 512 * model.n_units(SCANS[0]) * 4 * 2)  # 2 rows
        sliced = model.forward_readout(features, SCANS[0])
        monkeypatch.setattr(readout, "READOUT_SAMPLE_BYTES", 1)  # one row at a time
        sliced_subset = model.forward_readout(features, SCANS[0], units)
    assert torch.equal(sliced, whole) and torch.equal(sliced_subset, whole_subset)


def test_state_is_not_modified(model, videos):
    scan_ids = [SCANS[0]] * 2
    with torch.inference_mode():
        _, state = model.forward_features(videos[:, :2], scan_ids)
        saved = [state.hidden.clone(), state.cell.clone()] + [h.clone() for h in state.history]
        first, _ = model.forward_features(videos[:, 2:4], scan_ids, state)
        second, _ = model.forward_features(videos[:, 2:4], scan_ids, state)
    assert torch.equal(first, second)
    for before, after in zip(saved, [state.hidden, state.cell, *state.history]):
        assert torch.equal(before, after)
    assert state.frame == 2


def test_features_shape_and_layout(model, videos):
    with torch.inference_mode():
        features, state = model.forward_features(videos[:1, :3], [SCANS[0]])
    assert features.shape == (1, 3, 512, 16, 24) and features.dtype == torch.float32 and features.is_contiguous()
    assert state.hidden.shape == (1, 32, 32, 384) and state.frame == 3


def test_bf16_autocast_runs_and_stays_close(model, videos):
    frames, scan_ids = videos[:1, :3], [SCANS[0]]
    expected = one_pass(model, frames, scan_ids)[0]
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        features, state = model.forward_features(frames, scan_ids)
        responses = model.forward_readout(features, SCANS[0])[0]
    assert features.dtype == torch.float32 and state.cell.dtype == torch.float32
    assert max_rel(responses.float(), expected) < 0.05


def test_readout_of_alternating_unit_selections_matches_the_full_readout(model, videos):
    """Each selection's plan is cached until another selection comes: A, B, A again all give the full readout's bits."""
    with torch.inference_mode():
        features, _ = model.forward_features(videos[:1, :2], [SCANS[0]])
        full = model.forward_readout(features, SCANS[0])
        selections = ([0, 5, 17], [3, 200, 9], [0, 5, 17], [17, 5])
        for units in map(torch.tensor, selections):
            assert torch.equal(model.forward_readout(features, SCANS[0], units), full[..., units])
