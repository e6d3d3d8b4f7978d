"""Per-unit and per-pair structure–function measures: readout feature similarity, RF distance, signal correlation.

Geometry (model/perspective.py): the eye sits at the origin; a retina pixel looks along its ray g (the
checkpoint's ``perspective.retina.grid``, (128, 192, 3)), rotated by the eye rotation R of the default eye
position (r = R g); the monitor is the plane through ``perspective.monitor.center`` c with axes (x, y, normal)
the columns of its rotation. A unit's ray is the retina ray bilinearly interpolated at its readout position
(``tanh(mu)``, the same point of the retina as of the feature grid, see analysis/retinotopy.py), normalised and
rotated by R.

Degrees of visual angle, relative to the direction of the monitor centre f = c / |c| (the ray that hits the
monitor's centre pixel, (127.5, 71.5)): with e_x the monitor's x axis (increasing column) and e_y its y axis
(increasing row), both made orthogonal to f (Gram–Schmidt), a unit vector r has

    azimuth   = atan2(r . e_x, r . f)                         (deg, positive towards the right of the screen)
    elevation = atan2(-r . e_y, hypot(r . f, r . e_x))        (deg, positive towards the top of the screen)

(longitude and latitude on a sphere whose pole is the screen's up direction). The RF distance of two units is
the angle between their rays (great-circle distance, deg), which does not depend on this reference frame.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from berg_ray.analysis.retinotopy import values_at_positions
from berg_ray.errors import AnalysisInputError

ANGLE_ROWS = 256  # rows of the angle matrix computed at once (bounds the cross products' memory)


def feature_vectors(weights: np.ndarray) -> np.ndarray:
    """Readout feature weights (S, C, U) (``Readout.weights``) -> float32 (U, S * C), stream-major: entry
    ``s * C + c`` is stream s's weight on feature channel c (S = 4 streams, C = 128: 512 values per unit)."""
    w = np.asarray(weights)
    if w.ndim != 3:
        raise AnalysisInputError(f"need readout weights (S, C, U), got shape {w.shape}")
    return np.ascontiguousarray(w.transpose(2, 0, 1).reshape(w.shape[2], -1), dtype=np.float32)


def cosine_similarity_matrix(vectors: np.ndarray) -> np.ndarray:
    """Cosine similarity (U, U) float64 of the rows of ``vectors`` (U, D); NaN where a vector is all zeros."""
    v = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(v, axis=1)
    unit = v / np.where(norms > 0, norms, np.nan)[:, None]
    return np.clip(unit @ unit.T, -1.0, 1.0)


def unit_rays(retina_rays: np.ndarray, rotation: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Unit ray directions (U, 3) float64 of readout positions, in eye coordinates after the eye rotation.

    Args:
        retina_rays: (H, W, 3) retina ray per pixel (``perspective.retina.grid``).
        rotation: (3, 3) eye rotation R (r = R g).
        positions: (U, 2) readout positions (x, y) in [-1, 1], ``grid_sample`` convention (align_corners=False,
            border padding, as analysis/retinotopy.py maps positions to the monitor).
    """
    if np.ndim(retina_rays) != 3 or np.shape(retina_rays)[-1] != 3:
        raise AnalysisInputError(f"need retina_rays (H, W, 3), got {np.shape(retina_rays)}")
    sampled = values_at_positions(retina_rays, positions, "retina_rays", "positions")  # (U, 3)
    rotated = sampled @ np.asarray(rotation, dtype=np.float64).T
    return rotated / np.linalg.norm(rotated, axis=1, keepdims=True)


def visual_frame(monitor_axes: np.ndarray, monitor_center: np.ndarray) -> np.ndarray:
    """Orthonormal rows (f, e_x, e_y) (3, 3): the monitor-centre direction and the screen's column and row
    directions made orthogonal to it (see the module docstring)."""
    axes = np.asarray(monitor_axes, dtype=np.float64)
    forward = np.asarray(monitor_center, dtype=np.float64)
    forward = forward / np.linalg.norm(forward)
    frame = [forward]
    for axis in (axes[:, 0], axes[:, 1]):
        for done in frame:
            axis = axis - (axis @ done) * done
        frame.append(axis / np.linalg.norm(axis))
    return np.stack(frame)


def ray_degrees(rays: np.ndarray, monitor_axes: np.ndarray, monitor_center: np.ndarray) -> np.ndarray:
    """Azimuth and elevation (U, 2) in degrees of unit rays (U, 3) relative to the monitor centre direction
    (module docstring): (0, 0) at the centre, azimuth positive rightwards, elevation positive upwards."""
    f, ex, ey = visual_frame(monitor_axes, monitor_center)
    r = np.asarray(rays, dtype=np.float64)
    along, right, down = r @ f, r @ ex, r @ ey
    return np.degrees(np.stack([np.arctan2(right, along), np.arctan2(-down, np.hypot(along, right))], axis=-1))


def angle_matrix(rays: np.ndarray) -> np.ndarray:
    """Angle (U, U) in degrees between unit rays (U, 3): the great-circle distance, atan2(|a x b|, a . b)
    (accurate for small and large angles alike); 0 on the diagonal."""
    r = np.asarray(rays, dtype=np.float64)
    angles = np.empty((len(r), len(r)))
    for start in range(0, len(r), ANGLE_ROWS):  # (rows, U, 3) cross products at a time, not (U, U, 3)
        block = r[start:start + ANGLE_ROWS]
        cross = np.linalg.norm(np.cross(block[:, None, :], r[None, :, :]), axis=-1)
        angles[start:start + ANGLE_ROWS] = np.degrees(np.arctan2(cross, block @ r.T))
    return angles


def signal_correlation_matrix(responses: np.ndarray) -> np.ndarray:
    """Pearson correlation (U, U) float64 between the columns of ``responses`` (T, U): the samples are the T
    per-frame responses (after the burn-in, over every stimulus). A unit whose responses are constant (or not
    finite) gets NaN in its row and column (1 on the diagonal otherwise)."""
    x = np.asarray(responses, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise AnalysisInputError(f"need responses (T, U) with T >= 2 samples, got shape {x.shape}")
    centred = x - x.mean(axis=0)
    norms = np.sqrt((centred ** 2).sum(axis=0))
    constant = ~np.isfinite(norms) | (np.ptp(x, axis=0) == 0) | (norms == 0)
    unit = centred / np.where(constant, np.nan, norms)
    return np.clip(unit.T @ unit, -1.0, 1.0)


def pair_table(units: pd.DataFrame, measures: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per pair (i < j, row-major) of the U units of ``units``.

    Args:
        units: (U rows) per-unit columns to copy for both units of a pair, as ``{name}_a`` and ``{name}_b``
            (e.g. readout_id, unit_id, area).
        measures: name -> (U, U) symmetric matrix; each becomes a column of the upper triangle's values.
    """
    n = len(units)
    i, j = np.triu_indices(n, k=1)
    columns = {}
    for name in units.columns:
        values = units[name].to_numpy()
        columns[f"{name}_a"], columns[f"{name}_b"] = values[i], values[j]
    for name, matrix in measures.items():
        if np.shape(matrix) != (n, n):
            raise AnalysisInputError(f"measure {name!r} has shape {np.shape(matrix)}, need ({n}, {n})")
        columns[name] = np.asarray(matrix)[i, j]
    return pd.DataFrame(columns)


def n_pairs(n_units: int) -> int:
    """Pairs i < j of ``n_units`` units."""
    return n_units * (n_units - 1) // 2
