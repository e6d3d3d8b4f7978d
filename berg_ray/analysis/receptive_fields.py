"""Spatial receptive fields from responses to flashing dots on a grid (:func:`berg_ray.stimuli.dot_grid`).

A unit's RF map is its response to a dot at each grid position minus its baseline (the response to a grey
blank, or the median over positions when none is given). Its RF centre is the centroid, in monitor pixels
(col, row), of the grid positions weighted by |map| where |map| reaches at least half its maximum: ON and OFF
responses both count, and far, weak positions do not pull the centre towards the screen centre.
"""

from __future__ import annotations

import numpy as np

from berg_ray.errors import AnalysisInputError

HALF_MAX = 0.5


def rf_maps(responses: np.ndarray, n_rows: int, n_cols: int, baseline: np.ndarray | None = None) -> np.ndarray:
    """Receptive-field maps of every unit.

    Args:
        responses: float (n_rows * n_cols, U) mean response to the dot at each grid position, row-major as
            ``dot_grid(n_rows, n_cols)`` orders them.
        n_rows, n_cols: the grid's size.
        baseline: (U,) response to a grey blank; None: the median response over positions.

    Returns:
        float64 (U, n_rows, n_cols): response minus baseline.
    """
    array = np.asarray(responses, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != n_rows * n_cols or not np.isfinite(array).all():
        raise AnalysisInputError(f"responses must be finite (n_rows * n_cols = {n_rows * n_cols}, n_units), got "
                                 f"shape {array.shape}")
    if baseline is None:
        reference = np.median(array, axis=0)
    else:
        reference = np.asarray(baseline, dtype=np.float64)
        if reference.shape != (array.shape[1],) or not np.isfinite(reference).all():
            raise AnalysisInputError(f"baseline must be finite with shape ({array.shape[1]},), got {reference.shape}")
    return (array - reference).T.reshape(array.shape[1], n_rows, n_cols)


def rf_centres(maps: np.ndarray, positions_px: np.ndarray) -> np.ndarray:
    """RF centre of every unit: the centroid of the positions where |map| >= half its maximum, weighted by |map|.

    Args:
        maps: (U, n_rows, n_cols) from :func:`rf_maps`.
        positions_px: (n_rows * n_cols, 2) dot centres (col, row) in monitor pixels, row-major.

    Returns:
        float64 (U, 2) centres (col, row) in monitor pixels; NaN for a unit whose map is all zero.
    """
    magnitude = np.abs(np.asarray(maps, dtype=np.float64)).reshape(len(maps), -1)
    positions = np.asarray(positions_px, dtype=np.float64)
    if positions.shape != (magnitude.shape[1], 2):
        raise AnalysisInputError(f"positions_px must be ({magnitude.shape[1]}, 2) (col, row) pixels, got "
                                 f"{positions.shape}")
    peak = magnitude.max(axis=1, keepdims=True)
    weights = np.where((magnitude >= HALF_MAX * peak) & (peak > 0), magnitude, 0.0)
    total = weights.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, weights @ positions / np.where(total > 0, total, 1.0), np.nan)
