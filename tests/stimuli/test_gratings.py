"""Drifting gratings and Gabors: orientation from the spectrum, drift direction from the phase change."""

from __future__ import annotations

import numpy as np
import pytest

from berg_ray.errors import StimulusParameterError
from berg_ray.stimuli import drifting_gabor, drifting_grating, pixels_per_degree
from tests.stimuli.estimators import angle_error, drift_direction_deg, wavevector_axis_deg

DIRECTIONS = (0.0, 30.0, 90.0, 135.0, 200.0, 270.0, 315.0)


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_grating_orientation_and_drift_direction(direction: float) -> None:
    frames = drifting_grating(direction, 4, spatial_frequency_cpd=0.15, temporal_frequency_hz=3.0)
    assert frames.dtype == np.uint8 and frames.shape == (4, 144, 256)
    # Wave vector along the direction = bars orthogonal to it.
    assert angle_error(wavevector_axis_deg(frames[0]), direction % 180, period=180) < 1.0
    assert angle_error(drift_direction_deg(frames), direction) < 1.0


def test_direction_convention_in_pixels() -> None:
    """0 deg moves crests to increasing column; 90 deg moves them towards row 0."""
    def shift(a: np.ndarray, b: np.ndarray) -> int:
        lags = np.arange(-6, 7)
        scores = [np.dot(a.astype(float) - a.mean(), np.roll(b, -lag).astype(float) - b.mean()) for lag in lags]
        return int(lags[int(np.argmax(scores))])
    temporal_hz = 2 * 0.05 * 30 / pixels_per_degree()  # speed = temporal / spatial frequency: 2 px per frame
    right = drifting_grating(0.0, 2, spatial_frequency_cpd=0.05, temporal_frequency_hz=temporal_hz)
    assert shift(right[0, 0], right[1, 0]) == 2
    up = drifting_grating(90.0, 2, spatial_frequency_cpd=0.05, temporal_frequency_hz=temporal_hz)
    assert shift(up[0, :, 0], up[1, :, 0]) == -2


def test_grating_spatial_frequency_contrast_and_mean() -> None:
    frames = drifting_grating(0.0, 3, spatial_frequency_cpd=0.1, contrast=0.5, mean_luminance=100.0)
    row = frames[0, 0].astype(float)
    cycles_per_row = int(np.argmax(np.abs(np.fft.rfft(row - row.mean()))))
    assert abs(cycles_per_row - 256 / pixels_per_degree() * 0.1) <= 0.5
    assert abs(row.max() - 150) <= 1 and abs(row.min() - 50) <= 1
    assert abs(frames.mean() - 100.0) < 1.0


def test_static_grating_at_zero_temporal_frequency() -> None:
    frames = drifting_grating(45.0, 5, temporal_frequency_hz=0.0)
    assert (frames == frames[0]).all()


def test_gabor_is_a_windowed_grating_at_its_position() -> None:
    position = (60.0, 40.0)
    frames = drifting_gabor(135.0, 10, position_px=position, sigma_deg=8.0, spatial_frequency_cpd=0.15,
                            temporal_frequency_hz=3.0)
    assert frames.dtype == np.uint8 and frames.shape == (10, 144, 256)
    energy = ((frames.astype(float) - 127.5) ** 2).mean(axis=0) - 0.25  # one temporal cycle: the window squared
    rows, cols = np.mgrid[0:144, 0:256]
    centroid = (np.sum(energy * cols) / energy.sum(), np.sum(energy * rows) / energy.sum())
    assert np.hypot(centroid[0] - position[0], centroid[1] - position[1]) < 1.5
    assert (frames[:, :, 200:] == 128).all()
    assert angle_error(wavevector_axis_deg(frames[0]), 135.0, period=180) < 3.0
    assert angle_error(drift_direction_deg(frames), 135.0) < 1.0


@pytest.mark.parametrize("kwargs, word", [
    ({"contrast": 1.5}, "contrast"), ({"mean_luminance": 200.0}, "exceeds 255"),
    ({"spatial_frequency_cpd": 5.0}, "spatial_frequency_cpd"), ({"temporal_frequency_hz": 20.0}, "temporal"),
    ({"n_frames": 0}, "n_frames"), ({"direction_deg": float("nan")}, "direction_deg"),
])
def test_grating_rejects_bad_parameters(kwargs: dict, word: str) -> None:
    arguments = {"direction_deg": 0.0, "n_frames": 2} | kwargs
    with pytest.raises(StimulusParameterError, match=word):
        drifting_grating(**arguments)
