"""Structure–function math: feature vectors, cosine similarity, ray geometry, signal correlation, pair table."""

import numpy as np
import pandas as pd
import pytest
import torch

from berg_ray.analysis.structure_function import (angle_matrix, cosine_similarity_matrix, feature_vectors, n_pairs,
                                                  pair_table, ray_degrees, signal_correlation_matrix, unit_rays,
                                                  visual_frame)
from berg_ray.checkpoint.demo import retina_grid
from berg_ray.errors import AnalysisInputError
from berg_ray.model.functional import rotation_matrix
from berg_ray.model.perspective import monitor_coordinates


def test_feature_vectors_are_stream_major():
    weights = np.arange(4 * 3 * 2, dtype=np.float32).reshape(4, 3, 2)  # (S, C, U)
    vectors = feature_vectors(weights)
    assert vectors.shape == (2, 12) and vectors.dtype == np.float32
    for s in range(4):
        for c in range(3):
            assert vectors[1, s * 3 + c] == weights[s, c, 1]


def test_cosine_similarity_known_values():
    v = np.array([[1.0, 0, 0], [0, 2.0, 0], [3.0, 0, 0], [-1.0, 0, 0], [1.0, 1.0, 0], [0, 0, 0]])
    cos = cosine_similarity_matrix(v)
    assert cos[0, 1] == 0.0 and cos[0, 2] == pytest.approx(1.0) and cos[0, 3] == pytest.approx(-1.0)
    assert cos[0, 4] == pytest.approx(np.sqrt(0.5))
    assert np.isnan(cos[5]).all() and np.isnan(cos[:, 5]).all()  # a zero vector has no direction
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 512))
    expected = (x @ x.T) / np.outer(np.linalg.norm(x, axis=1), np.linalg.norm(x, axis=1))
    np.testing.assert_allclose(cosine_similarity_matrix(x), expected, atol=1e-12)


def test_angles_between_rays():
    rays = np.array([[0, 0, 1.0], [0, 0, 1.0], [1.0, 0, 0], [0, 0, -1.0], [np.sin(1e-6), 0, np.cos(1e-6)]])
    angles = angle_matrix(rays)
    assert angles[0, 1] == 0.0 and np.diag(angles).max() == 0.0
    assert angles[0, 2] == pytest.approx(90.0) and angles[0, 3] == pytest.approx(180.0)
    assert angles[0, 4] == pytest.approx(np.degrees(1e-6), rel=1e-9)  # small angles stay accurate
    np.testing.assert_allclose(angles, angles.T)
    many = np.random.default_rng(2).normal(size=(600, 3))  # more rows than one block
    many /= np.linalg.norm(many, axis=1, keepdims=True)
    expected = np.degrees(np.arccos(np.clip(many @ many.T, -1, 1)))
    np.testing.assert_allclose(angle_matrix(many), expected, atol=1e-5)  # arccos: ~1e-6 deg off near 0


def test_degrees_relative_to_the_monitor_centre():
    axes, centre = np.eye(3), np.array([0.0, 0.0, 0.5])  # monitor straight ahead: x right (columns), y down (rows)
    rays = np.array([[0, 0, 1.0], [np.sin(np.radians(30)), 0, np.cos(np.radians(30))],
                     [0, -np.sin(np.radians(20)), np.cos(np.radians(20))]])
    np.testing.assert_allclose(ray_degrees(rays, axes, centre), [[0, 0], [30, 0], [0, 20]], atol=1e-12)
    # A tilted monitor: its centre's direction is (0, 0) whatever the tilt; the frame is orthonormal.
    tilted = rotation_matrix(torch.tensor([0.1, -0.2, 0.05], dtype=torch.float64)).numpy()
    off_centre = np.array([0.02, -0.03, 0.5])
    frame = visual_frame(tilted, off_centre)
    np.testing.assert_allclose(frame @ frame.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(ray_degrees(off_centre[None] / np.linalg.norm(off_centre), tilted, off_centre),
                               [[0, 0]], atol=1e-12)


def test_unit_rays_interpolate_and_rotate():
    grid = retina_grid().numpy().astype(np.float64)  # the demo's equidistant retina: centre ray (0, 0, 1)
    positions = np.array([[0.0, 0.0], [0.5, -0.25], [-0.9, 0.8]])
    rays = unit_rays(grid, np.eye(3), positions)
    np.testing.assert_allclose(np.linalg.norm(rays, axis=1), 1.0)
    np.testing.assert_allclose(rays[0], [0, 0, 1], atol=1e-3)  # between the 4 central pixels
    np.testing.assert_allclose(ray_degrees(rays[:1], np.eye(3), np.array([0, 0, 0.5])), [[0, 0]], atol=0.1)
    angle = np.radians(10)
    about_y = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    rotated = unit_rays(grid, about_y, positions)
    np.testing.assert_allclose(rotated, rays @ about_y.T, atol=1e-12)
    np.testing.assert_allclose(angle_matrix(rotated), angle_matrix(rays), atol=1e-9)  # distances: rotation-free
    # Rays hit the monitor where the perspective grid says: the same geometry as model/perspective.py.
    hits = monitor_coordinates(torch.as_tensor(rays), torch.eye(3, dtype=torch.float64),
                               torch.tensor([0, 0, 0.5], dtype=torch.float64)).numpy()
    assert np.abs(hits[0]).max() < 1e-3
    with pytest.raises(AnalysisInputError):
        unit_rays(grid, np.eye(3), np.zeros((3, 3)))


def test_signal_correlation_matches_numpy_and_marks_constant_units():
    rng = np.random.default_rng(1)
    responses = rng.gamma(2.0, size=(50, 5))
    responses[:, 1] = 2 * responses[:, 0] + 1
    np.testing.assert_allclose(signal_correlation_matrix(responses), np.corrcoef(responses.T), atol=1e-12)
    assert signal_correlation_matrix(responses)[0, 1] == pytest.approx(1.0)
    responses[:, 3] = 0.1  # constant: no correlation defined
    corr = signal_correlation_matrix(responses)
    assert np.isnan(corr[3]).all() and np.isnan(corr[:, 3]).all()
    others = [0, 1, 2, 4]
    np.testing.assert_allclose(corr[np.ix_(others, others)], np.corrcoef(responses[:, others].T), atol=1e-12)
    with pytest.raises(AnalysisInputError, match="T >= 2"):
        signal_correlation_matrix(responses[:1])


def test_pair_table_upper_triangle():
    units = pd.DataFrame({"readout_id": [4, 7, 9], "area": ["V1", "LM", "V1"]})
    matrix = np.array([[1.0, 0.1, 0.2], [0.1, 1.0, 0.3], [0.2, 0.3, 1.0]])
    pairs = pair_table(units, {"m": matrix})
    assert pairs["readout_id_a"].tolist() == [4, 4, 7] and pairs["readout_id_b"].tolist() == [7, 9, 9]
    assert pairs["area_b"].tolist() == ["LM", "V1", "V1"] and pairs["m"].tolist() == [0.1, 0.2, 0.3]
    assert len(pair_table(units.iloc[:1], {"m": matrix[:1, :1]})) == 0 == n_pairs(1)
    assert n_pairs(633) == 200_028
    with pytest.raises(AnalysisInputError):
        pair_table(units, {"m": matrix[:2, :2]})
