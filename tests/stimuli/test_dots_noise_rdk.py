"""Flashing dots (position, polarity), directional pink noise and random dot kinematograms (direction), seeds."""

from __future__ import annotations

import numpy as np
import pytest

from berg_ray.errors import StimulusParameterError
from berg_ray.stimuli import (directional_pink_noise, dot_grid, flashing_dot, pixels_per_degree,
                              random_dot_kinematogram)
from tests.stimuli.estimators import (angle_error, direction_of, drift_direction_deg, mean_displacement,
                                      wavevector_axis_deg)


@pytest.mark.parametrize("position, polarity", [((60.0, 40.0), "on"), ((200.5, 100.25), "off")])
def test_flashing_dot_position_and_polarity(position: tuple[float, float], polarity: str) -> None:
    frames = flashing_dot(position, 3, sigma_deg=4.0, polarity=polarity)
    assert frames.dtype == np.uint8 and frames.shape == (3, 144, 256) and (frames == frames[0]).all()
    deviation = frames[0].astype(float) - 128  # background: rint(127.5)
    assert (deviation.max() > 100) if polarity == "on" else (deviation.min() < -100)
    weight = np.abs(deviation)
    rows, cols = np.mgrid[0:144, 0:256]
    centroid = (np.sum(weight * cols) / weight.sum(), np.sum(weight * rows) / weight.sum())
    assert np.hypot(centroid[0] - position[0], centroid[1] - position[1]) < 0.3


def test_dot_grid_covers_the_screen_row_major() -> None:
    grid = dot_grid(3, 4, margin_px=10.0)
    assert grid.shape == (12, 2)
    assert grid[0].tolist() == [10.0, 10.0] and grid[-1].tolist() == [245.0, 133.0]
    assert grid[1, 1] == grid[0, 1] and grid[4, 0] == grid[0, 0]  # k = i * n_cols + j


def test_flashing_dot_rejects_bad_polarity_and_position() -> None:
    with pytest.raises(StimulusParameterError, match="polarity"):
        flashing_dot((10, 10), 2, polarity="bright")
    with pytest.raises(StimulusParameterError, match="position_px col"):
        flashing_dot((300, 10), 2)


@pytest.mark.parametrize("direction", [0.0, 60.0, 225.0])
def test_pink_noise_orientation_and_direction(direction: float) -> None:
    frames = directional_pink_noise(direction, 6, seed=3, speed_deg_s=60.0, orientation_bandwidth_deg=10.0)
    assert frames.dtype == np.uint8 and frames.shape == (6, 144, 256)
    assert angle_error(wavevector_axis_deg(frames[0]), direction % 180, period=180) < 5.0
    # Along the bars a shift is invisible (aperture problem): take the direction from the Fourier phase change.
    assert angle_error(drift_direction_deg(frames), direction) < 5.0


def test_pink_noise_contrast_mean_and_seed() -> None:
    frames = directional_pink_noise(30.0, 3, seed=1, rms_contrast=0.2, mean_luminance=100.0)
    assert abs(frames.mean() - 100.0) < 2.0 and abs(frames[0].std() / 100.0 - 0.2) < 0.01
    assert (directional_pink_noise(30.0, 3, seed=1, rms_contrast=0.2, mean_luminance=100.0) == frames).all()
    assert (directional_pink_noise(30.0, 3, seed=2, rms_contrast=0.2, mean_luminance=100.0) != frames).any()


@pytest.mark.parametrize("direction, coherence", [(0.0, 1.0), (120.0, 1.0), (300.0, 0.5)])
def test_rdk_net_motion_direction(direction: float, coherence: float) -> None:
    frames = random_dot_kinematogram(direction, 12, seed=4, coherence=coherence, speed_deg_s=80.0)
    assert frames.dtype == np.uint8 and frames.shape == (12, 144, 256)
    assert set(np.unique(frames)) == {0, 128} or set(np.unique(frames)) == {128, 255}
    dx, dy = mean_displacement(frames)
    assert angle_error(direction_of(dx, dy), direction) < 8.0
    assert abs(np.hypot(dx, dy) - 80.0 * pixels_per_degree() / 30) < 0.6


def test_rdk_zero_coherence_has_no_net_motion() -> None:
    coherent = mean_displacement(random_dot_kinematogram(0.0, 30, seed=5, coherence=1.0, speed_deg_s=80.0))
    incoherent = mean_displacement(random_dot_kinematogram(0.0, 30, seed=5, coherence=0.0, speed_deg_s=80.0))
    assert np.hypot(*incoherent) < 0.25 * np.hypot(*coherent)


def test_rdk_density_dot_size_polarity_and_seed() -> None:
    frames = random_dot_kinematogram(0.0, 2, seed=6, density_per_deg2=0.002, dot_diameter_deg=3.0, polarity="off")
    expected_dots = 0.002 * 256 * 144 / pixels_per_degree() ** 2
    disk_pixels = np.pi * (3.0 * pixels_per_degree() / 2) ** 2
    assert abs((frames[0] == 0).sum() / disk_pixels - expected_dots) < 0.35 * expected_dots  # overlaps, rounding
    same = random_dot_kinematogram(0.0, 2, seed=6, density_per_deg2=0.002, dot_diameter_deg=3.0, polarity="off")
    other = random_dot_kinematogram(0.0, 2, seed=7, density_per_deg2=0.002, dot_diameter_deg=3.0, polarity="off")
    assert (same == frames).all() and (other != frames).any()


def test_rdk_rejects_bad_coherence() -> None:
    with pytest.raises(StimulusParameterError, match="coherence"):
        random_dot_kinematogram(0.0, 2, coherence=1.5)
