"""In-silico tuning next to the in vivo values of the scan's metadata, and their agreement per visual area.

The metadata (``BERG.get_model_metadata`` or :class:`berg_ray.units.ScanUnits`) holds per unit, in
``calcium_2p``, the in vivo ``OSI``, ``DSI``, ``gOSI``, ``gDSI``, ``pref_ori`` and ``pref_dir`` (degrees).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from berg_ray.analysis.tuning import TUNING_COLUMNS
from berg_ray.config import ROIS
from berg_ray.errors import AnalysisInputError
from berg_ray.units import ScanUnits

INDEX_COLUMNS = ("OSI", "DSI", "gOSI", "gDSI")
INVIVO_PREFIX = "invivo_"
ALL_AREAS = "all"


def circular_difference(a: np.ndarray, b: np.ndarray, period: float) -> np.ndarray:
    """Signed difference a - b of angles on a circle of ``period`` degrees, in [-period/2, period/2)."""
    return (np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64) + period / 2) % period - period / 2


def tuning_table(units: ScanUnits, tuning: pd.DataFrame) -> pd.DataFrame:
    """Per-unit table of one scan: ids, area, field, the in-silico indices and the in vivo ones (``invivo_*``).

    Args:
        units: the scan's units (readout order).
        tuning: :func:`berg_ray.analysis.tuning.direction_tuning` output, one row per readout index.

    Returns:
        DataFrame with columns ``session``, ``scan``, ``readout_id``, ``unit_id``, ``area``, ``field``, the six
        tuning columns and the same six prefixed ``invivo_``.
    """
    if len(tuning) != units.n_units:
        raise AnalysisInputError(f"tuning has {len(tuning)} rows but {units.scan_id} has {units.n_units} units; pass "
                                 "the tuning of all units in readout order")
    calcium = units.metadata["calcium_2p"]
    table = pd.DataFrame({
        "session": units.scan_id.session, "scan": units.scan_id.scan, "readout_id": units.readout_id,
        "unit_id": units.unit_id, "area": units.area, "field": units.field,
    })
    for name in TUNING_COLUMNS:
        table[name] = tuning[name].to_numpy()
    for name in TUNING_COLUMNS:
        table[INVIVO_PREFIX + name] = np.asarray(calcium[name], dtype=np.float64)
    return table


def compare_with_invivo(table: pd.DataFrame) -> pd.DataFrame:
    """Agreement of in-silico and in vivo tuning, per area (V1, LM, AL, RL) and over all units.

    Args:
        table: :func:`tuning_table` output (one or several scans concatenated).

    Returns:
        DataFrame indexed by area (those present, then ``all``) with columns ``n_units``; ``median_dori`` and
        ``median_ddir``, the median absolute circular difference of ``pref_ori`` (period 180, chance 45) and
        ``pref_dir`` (period 360, chance 90) in degrees; and ``r_OSI``, ``r_DSI``, ``r_gOSI``, ``r_gDSI``, the
        Pearson correlations across units (NaN with fewer than 3 units with finite values).
    """
    rows = {}
    areas = [area for area in ROIS if (table["area"] == area).any()]
    for area in [*areas, ALL_AREAS]:
        part = table if area == ALL_AREAS else table[table["area"] == area]
        row = {"n_units": len(part),
               "median_dori": _median_abs(circular_difference(part["pref_ori"], part["invivo_pref_ori"], 180.0)),
               "median_ddir": _median_abs(circular_difference(part["pref_dir"], part["invivo_pref_dir"], 360.0))}
        for name in INDEX_COLUMNS:
            row[f"r_{name}"] = pearson(part[name].to_numpy(), part[INVIVO_PREFIX + name].to_numpy())
        rows[area] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation over the pairs where both are finite; NaN with fewer than 3 pairs or no variance."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 3:
        return float("nan")
    x, y = x[keep] - x[keep].mean(), y[keep] - y[keep].mean()
    denominator = np.sqrt((x**2).sum() * (y**2).sum())
    if denominator == 0:
        return float("nan")
    return float((x * y).sum() / denominator)


def _median_abs(values: np.ndarray) -> float:
    finite = np.abs(values[np.isfinite(values)])
    return float(np.median(finite)) if finite.size else float("nan")
