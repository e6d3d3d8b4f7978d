"""The recorded units of one scan (readout order) and BERG-style unit selection.

Readout index u (position u along a response's unit axis) is the unit whose ``readout_id`` is u in ``units.csv``.
Areas (V1, LM, AL, RL) and imaging fields come from the scan's metadata file, reordered to readout order by
``unit_id``. A selection picks the union of the units matching its ``roi``, ``field`` and ``unit_index`` entries,
as the BERG toolbox does, and keeps readout order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from berg_ray.config import ROIS, ScanId
from berg_ray.errors import InvalidSelectionError

SELECTION_KEYS = ("roi", "field", "unit_index")
# Top-level metadata key that marks a generated release (`berg-ray demo-release`: seeded random weights). It travels
# with the metadata files (S3 mirrors, downloads, node caches), so whatever reads the release can label its results.
GENERATED_KEY = "generated_by"


@dataclass(frozen=True, eq=False)
class ScanUnits:
    """Per-unit tables of one scan, all (U,) arrays in readout order.

    Attributes:
        scan_id: the scan.
        readout_id: 0..U-1 (int64).
        unit_id: MICrONS unit id of each readout index (int64).
        area: visual area ("V1", "LM", "AL", "RL"; "" where the metadata assigns none).
        field: imaging field, 1-based (0 where the metadata assigns none).
        fields: the scan's field numbers present in the metadata.
        metadata: the scan's metadata dict as read (per-unit arrays reordered to readout order).
    """

    scan_id: ScanId
    readout_id: np.ndarray
    unit_id: np.ndarray
    area: np.ndarray
    field: np.ndarray
    fields: tuple[int, ...]
    metadata: Mapping[str, Any] = field(repr=False)

    @property
    def n_units(self) -> int:
        return int(self.readout_id.shape[0])

    @property
    def weights(self) -> str:
        """"generated weights" when the scan's metadata marks a generated release, else "released weights"
        (for labelling figures and reports)."""
        return "generated weights" if GENERATED_KEY in self.metadata else "released weights"


def take_per_unit(value: Any, index: np.ndarray, n_units: int) -> Any:
    """Index every per-unit array (first dim ``n_units``) of a nested metadata dict with ``index``; keep the rest.

    Args:
        value: a metadata dict (or any value inside one).
        index: int64 positions (reorder or subset) along the unit axis.
        n_units: length of the unit axis, which identifies per-unit arrays.
    """
    if isinstance(value, Mapping):
        return {k: take_per_unit(v, index, n_units) for k, v in value.items()}
    if isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == n_units:
        return value[index]
    return value


def select_units(units: ScanUnits, selection: Mapping[str, Any] | None) -> np.ndarray | None:
    """Readout indices chosen by a BERG selection dict.

    Args:
        units: the scan's unit tables.
        selection: None (all units) or a dict with any of ``roi`` (one of V1/LM/AL/RL or a list of them),
            ``field`` (a field number of the scan or a list of them) and ``unit_index`` (a 0/1 array of length U).

    Returns:
        None for all units, else int64 readout indices (sorted, readout order) of the union of the masks.

    Raises:
        InvalidSelectionError: unknown key, bad value, wrong length, or an empty result.
    """
    if selection is None:
        return None
    if not isinstance(selection, Mapping):
        raise InvalidSelectionError(f"selection must be a dict with keys {SELECTION_KEYS}, got {type(selection)}")
    unknown = sorted(set(map(str, selection)) - set(SELECTION_KEYS))
    if unknown:
        raise InvalidSelectionError(f"unknown selection key(s) {unknown}; allowed keys: {list(SELECTION_KEYS)}")
    if not selection:
        raise InvalidSelectionError(f"selection is empty; pass None for all units or any of {list(SELECTION_KEYS)}")
    mask = np.zeros(units.n_units, dtype=bool)
    if "roi" in selection:
        mask |= np.isin(units.area, _roi_values(selection["roi"]))
    if "field" in selection:
        mask |= np.isin(units.field, _field_values(selection["field"], units))
    if "unit_index" in selection:
        mask |= _unit_index_mask(selection["unit_index"], units)
    if not mask.any():
        raise InvalidSelectionError(f"selection {_describe(selection)} selects no unit of {units.scan_id}")
    return np.flatnonzero(mask).astype(np.int64)


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple, set, frozenset)):
        return list(value)
    if isinstance(value, np.ndarray):
        return value.ravel().tolist()
    return [value]


def _roi_values(value: Any) -> list[str]:
    rois = _as_list(value)
    bad = [r for r in rois if r not in ROIS]
    if bad or not rois:
        raise InvalidSelectionError(f"selection roi {value!r} is invalid; use one or more of {list(ROIS)}")
    return rois


def _field_values(value: Any, units: ScanUnits) -> list[int]:
    fields = _as_list(value)
    ok = all(isinstance(f, (int, np.integer)) and not isinstance(f, (bool, np.bool_)) for f in fields)
    if not fields or not ok or any(int(f) not in units.fields for f in fields):
        raise InvalidSelectionError(
            f"selection field {value!r} is invalid for {units.scan_id}; use one or more of {list(units.fields)}"
        )
    return [int(f) for f in fields]


def _unit_index_mask(value: Any, units: ScanUnits) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim != 1 or array.shape[0] != units.n_units:
        raise InvalidSelectionError(
            f"selection unit_index has shape {array.shape}; {units.scan_id} needs a 0/1 vector of length "
            f"{units.n_units} (one entry per unit, readout order)"
        )
    if array.dtype != bool and not (np.issubdtype(array.dtype, np.number) and np.isin(array, (0, 1)).all()):
        raise InvalidSelectionError("selection unit_index must contain only 0 and 1 (or booleans)")
    return array.astype(bool)


def _describe(selection: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {'<vector>' if k == 'unit_index' else v!r}" for k, v in selection.items()) + "}"
