"""RF maps and centres on synthetic units; readout positions mapped to the monitor through the perspective."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from berg_ray.analysis.receptive_fields import rf_centres, rf_maps
from berg_ray.analysis.retinotopy import grid_to_pixels, readout_monitor_positions, rf_agreement
from berg_ray.checkpoint.release import load_model
from berg_ray.errors import AnalysisInputError
from berg_ray.stimuli import dot_grid


def test_rf_centres_of_gaussian_units() -> None:
    grid = dot_grid(6, 10, margin_px=8.0)
    centres = np.array([[40.0, 30.0], [200.0, 100.0], [128.0, 70.0]])
    sign = np.array([1.0, -1.0, 1.0])  # an OFF unit: its response drops
    distance2 = ((grid[:, None, :] - centres[None]) ** 2).sum(-1)
    responses = 2.0 + sign * np.exp(-distance2 / (2 * 20.0**2))
    maps = rf_maps(responses, 6, 10, baseline=np.full(3, 2.0))
    assert maps.shape == (3, 6, 10)
    assert maps[1].min() < -0.5 and maps[0].max() > 0.5
    found = rf_centres(maps, grid)
    assert np.hypot(*(found - centres).T).max() < 6.0  # grid spacing 26 x 24 px


def test_rf_maps_default_baseline_and_flat_unit() -> None:
    responses = np.ones((4, 2))
    responses[2, 0] = 3.0
    maps = rf_maps(responses, 2, 2)
    assert maps[0].tolist() == [[0.0, 0.0], [2.0, 0.0]]
    centres = rf_centres(maps, dot_grid(2, 2))
    assert centres[0].tolist() == dot_grid(2, 2)[2].tolist() and np.isnan(centres[1]).all()


def test_rf_inputs_are_checked() -> None:
    with pytest.raises(AnalysisInputError, match="n_rows"):
        rf_maps(np.ones((5, 2)), 2, 2)
    with pytest.raises(AnalysisInputError, match="positions_px"):
        rf_centres(np.ones((2, 2, 2)), np.ones((3, 2)))


def test_identity_grid_maps_readout_positions_linearly() -> None:
    """A perspective grid that samples the monitor uniformly maps a readout position to the same normalised point."""
    rows = (np.arange(128) * 2 + 1) / 128 - 1
    cols = (np.arange(192) * 2 + 1) / 192 - 1
    grid = np.stack(np.meshgrid(cols, rows), axis=-1)
    positions = np.array([[0.0, 0.0], [-0.5, 0.25], [0.9, -0.9]])
    mapped = readout_monitor_positions(grid, positions)
    np.testing.assert_allclose(mapped, grid_to_pixels(positions), atol=1e-9)
    np.testing.assert_allclose(grid_to_pixels(np.array([-1.0, -1.0])), [-0.5, -0.5])


def test_readout_position_sees_its_mapped_monitor_pixel(demo_model) -> None:
    """The chain on a demo release: a bright spot at a unit's mapped monitor pixel lights the retina at the
    unit's readout position."""
    model, scan_id = demo_model
    perspective = model.front_ends[scan_id].perspective
    positions = model.readouts[scan_id].positions.numpy()
    mapped = readout_monitor_positions(perspective.grid.numpy(), positions)
    on_screen = np.flatnonzero((mapped[:, 0] > 8) & (mapped[:, 0] < 247) & (mapped[:, 1] > 8) & (mapped[:, 1] < 135))
    assert on_screen.size >= 10
    for unit in on_screen[:10]:
        col, row = mapped[unit]
        frame = torch.zeros(1, 1, 144, 256)
        frame[0, 0, round(row) - 1:round(row) + 2, round(col) - 1:round(col) + 2] = 1.0
        retina = perspective(frame)[0, 0]
        peak = np.unravel_index(int(torch.argmax(retina)), retina.shape)
        seen = np.array([(2 * peak[1] + 1) / 192 - 1, (2 * peak[0] + 1) / 128 - 1])
        assert np.abs(seen - positions[unit]).max() < 3 * 2 / 128  # within 3 retina pixels


def test_rf_agreement_measures() -> None:
    centres = np.array([[10.0, 10.0], [100.0, 50.0], [200.0, 120.0], [np.nan, 1.0]])
    mapped = centres + np.array([[3.0, 4.0], [3.0, 4.0], [-3.0, -4.0], [0.0, 0.0]])
    result = rf_agreement(centres, mapped)
    assert result["n_units"] == 3 and result["median_distance_px"] == pytest.approx(5.0)
    assert result["r_x"] > 0.99 and result["r_y"] > 0.99


@pytest.fixture(scope="module")
def demo_model(demo_berg_dir: Path):
    """The demo release's model of one scan (conftest's ``demo_berg_dir``) on the CPU."""
    return load_model(demo_berg_dir, ["session-8_scan-5"], device="cpu"), "session-8_scan-5"
