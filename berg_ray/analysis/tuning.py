"""Direction and orientation tuning from mean responses to drifting stimuli.

Definitions (angles in degrees, directions as in :mod:`berg_ray.stimuli.geometry`; d in radians in the sums):

* ``R(theta)``: the tuning curve between the sampled directions, by linear interpolation on the circle.
* ``pref_dir`` in [0, 360): the peak of the curve: the sampled direction with the largest response, refined by
  the vertex of the parabola through it and its two neighbours (so a peak between samples is found to a fraction
  of the spacing; a flat top keeps the sample). ``pref_ori = pref_dir mod 180``.
* ``OSI = (R_pref - R_orth) / (R_pref + R_orth)``, ``R_pref = R(pref_dir)``, ``R_orth`` the mean of
  ``R(pref_dir + 90)`` and ``R(pref_dir - 90)``.
* ``DSI = (R_pref - R_null) / (R_pref + R_null)``, ``R_null = R(pref_dir + 180)``.
* ``gOSI = |sum_d r(d) exp(2 i d)| / sum_d r(d)``, ``gDSI = |sum_d r(d) exp(i d)| / sum_d r(d)``.

Responses must be non-negative (the model's rates are), so every index lies in [0, 1]; an index whose
denominator is 0 (a unit silent at those directions) is NaN.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from berg_ray.errors import AnalysisInputError

TUNING_COLUMNS = ("pref_dir", "pref_ori", "OSI", "DSI", "gOSI", "gDSI")
_SPACING_TOLERANCE_DEG = 1e-6


def check_directions(directions_deg: np.ndarray) -> np.ndarray:
    """Validate directions that sample the circle uniformly; return them as float64 in [0, 360), input order.

    Raises:
        AnalysisInputError: fewer than 4, non-finite, repeated, or not uniformly spaced over 360 deg.
    """
    directions = np.asarray(directions_deg, dtype=np.float64)
    if directions.ndim != 1 or directions.shape[0] < 4 or not np.isfinite(directions).all():
        raise AnalysisInputError(f"directions_deg must be a 1-D array of >= 4 finite angles in degrees, got shape "
                                 f"{directions.shape}")
    wrapped = directions % 360.0
    steps = np.diff(np.append(np.sort(wrapped), np.sort(wrapped)[0] + 360.0))
    spacing = 360.0 / directions.shape[0]
    if np.abs(steps - spacing).max() > _SPACING_TOLERANCE_DEG:
        raise AnalysisInputError(f"directions_deg must be {directions.shape[0]} distinct angles uniformly spaced "
                                 f"over 360 deg ({spacing:g} deg apart), e.g. np.arange(n) * 360 / n; got "
                                 f"{np.round(directions, 3).tolist()}")
    return wrapped


def check_responses(responses: np.ndarray, n_directions: int) -> np.ndarray:
    """Validate (n_directions, n_units) non-negative finite responses; return float64."""
    array = np.asarray(responses, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != n_directions or array.shape[1] < 1:
        raise AnalysisInputError(f"responses must be (n_directions={n_directions}, n_units) mean responses per "
                                 f"direction, got shape {array.shape} (one unit: reshape to (-1, 1))")
    if not np.isfinite(array).all() or (array < 0).any():
        raise AnalysisInputError("responses must be finite and non-negative (rates); subtract no baseline, or clip "
                                 "at 0 after subtracting one")
    return array


def interpolate_curve(curve: np.ndarray, angles_deg: np.ndarray) -> np.ndarray:
    """Tuning curves at arbitrary angles, linear interpolation on the circle.

    Args:
        curve: (n, U) responses at directions k * 360 / n, k = 0..n-1 (sorted, starting at 0).
        angles_deg: (U,) one angle per unit.

    Returns:
        (U,) interpolated responses.
    """
    n = curve.shape[0]
    position = (np.asarray(angles_deg) % 360.0) / (360.0 / n)
    low = np.floor(position).astype(np.int64) % n
    weight = position - np.floor(position)
    units = np.arange(curve.shape[1])
    return (1 - weight) * curve[low, units] + weight * curve[(low + 1) % n, units]


def peak_direction(curve: np.ndarray) -> np.ndarray:
    """Preferred direction (U,) in [0, 360) of curves (n, U) sampled at k * 360 / n: the largest sample refined by
    parabolic interpolation with its two circular neighbours."""
    n = curve.shape[0]
    units = np.arange(curve.shape[1])
    peak = np.argmax(curve, axis=0)
    left, centre, right = curve[(peak - 1) % n, units], curve[peak, units], curve[(peak + 1) % n, units]
    curvature = left - 2 * centre + right
    safe = np.where(curvature < 0, curvature, -1.0)
    shift = np.where(curvature < 0, 0.5 * (left - right) / safe, 0.0)  # in [-0.5, 0.5] samples
    return ((peak + shift) * (360.0 / n)) % 360.0


def direction_tuning(responses: np.ndarray, directions_deg: np.ndarray) -> pd.DataFrame:
    """Tuning indices of every unit from its mean response per direction.

    Args:
        responses: float (n_directions, n_units), mean response of each unit to each direction (non-negative).
        directions_deg: (n_directions,) directions in degrees, uniformly spaced over 360 (any order and offset).

    Returns:
        DataFrame with one row per unit (index 0..n_units-1, the column order of ``responses``) and columns
        ``pref_dir`` and ``pref_ori`` (deg) and ``OSI``, ``DSI``, ``gOSI``, ``gDSI`` as defined in the module
        docstring.

    Raises:
        AnalysisInputError: bad shapes, directions or values.
    """
    directions = check_directions(directions_deg)
    rates = check_responses(responses, directions.shape[0])
    order = np.argsort(directions)
    start = directions[order[0]]
    curve = rates[order]  # sorted by direction; sample k at start + k * spacing
    pref_dir = (peak_direction(curve) + start) % 360.0
    relative = pref_dir - start
    r_pref = interpolate_curve(curve, relative)
    r_orth = 0.5 * (interpolate_curve(curve, relative + 90.0) + interpolate_curve(curve, relative - 90.0))
    r_null = interpolate_curve(curve, relative + 180.0)
    radians = np.radians(directions)[:, None]
    total = rates.sum(axis=0)
    return pd.DataFrame({
        "pref_dir": pref_dir,
        "pref_ori": pref_dir % 180.0,
        "OSI": _ratio(r_pref - r_orth, r_pref + r_orth),
        "DSI": _ratio(r_pref - r_null, r_pref + r_null),
        "gOSI": _ratio(np.abs((rates * np.exp(2j * radians)).sum(axis=0)), total),
        "gDSI": _ratio(np.abs((rates * np.exp(1j * radians)).sum(axis=0)), total),
    })


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is 0."""
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, numerator / safe, np.nan)
