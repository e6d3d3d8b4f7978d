"""``--units`` of the per-unit experiments (mei, properties): which readout indices of a scan to run.

``all`` picks every unit; ``top:N`` the N units the model predicts best in vivo (highest ``cc_norm`` of the
release's ``encoding_model`` scores, ties by readout index; MEIs are made for well-predicted units, as in the
model's paper); a comma-separated list of readout indices (``0,5,17``, ranges ``10-19``) picks those. A spec is
parsed once (:func:`parse_unit_choice`, before anything runs) and resolved per scan (:func:`choose_units`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from berg_ray.config import ECHO_CHARS
from berg_ray.errors import InvalidSelectionError
from berg_ray.validation.numbers import ascii_int
from berg_ray.units import ScanUnits

RANK_SCORE = "cc_norm"  # the release's per-unit held-out prediction accuracy (encoding_model scores)


@dataclass(frozen=True)
class UnitChoice:
    """A parsed ``--units`` value: ``kind`` "all", "top" (``count`` units) or "list" (``indices``)."""

    kind: str
    count: int = 0
    indices: tuple[int, ...] = ()


def parse_unit_choice(value: str, flag: str = "--units") -> UnitChoice:
    """``all`` | ``top:N`` | ``I,J,K-L`` -> UnitChoice; InvalidSelectionError naming ``flag`` otherwise."""
    text = value.strip().lower()
    example = f"{flag} all, {flag} top:16 or {flag} 0,5,10-19"
    if text == "all":
        return UnitChoice("all")
    if text.startswith("top:"):
        count = ascii_int(text[4:])
        if count is None or count < 1:
            raise InvalidSelectionError(f"{flag} {value[:ECHO_CHARS]!r}: N of top:N must be a positive integer "
                                        f"(ASCII digits); e.g. {example}")
        return UnitChoice("top", count=count)
    indices: list[int] = []
    for part in text.split(","):
        bounds = [ascii_int(b) for b in part.split("-")] if part.strip() else [None]
        if len(bounds) not in (1, 2) or any(b is None or b < 0 for b in bounds) or bounds[0] > bounds[-1]:
            raise InvalidSelectionError(f"{flag} {value[:ECHO_CHARS]!r}: {part.strip()[:ECHO_CHARS]!r} is not a "
                                        f"readout index or an ascending range of them; e.g. {example}")
        indices.extend(range(bounds[0], bounds[-1] + 1))
    if len(set(indices)) != len(indices):
        raise InvalidSelectionError(f"{flag} {value[:ECHO_CHARS]!r} names a unit twice; name each once")
    return UnitChoice("list", indices=tuple(indices))


def choose_units(choice: UnitChoice, units: ScanUnits) -> np.ndarray:
    """Readout indices (int64) of ``choice`` in ``units``' scan: sorted for "all" and lists, best first for "top".

    Raises InvalidSelectionError when a listed index is out of range (naming the scan's unit count)."""
    n_units = units.n_units
    if choice.kind == "all":
        return np.arange(n_units, dtype=np.int64)
    if choice.kind == "top":
        scores = np.asarray(units.metadata["encoding_model"][RANK_SCORE], dtype=np.float64)
        scores = np.where(np.isfinite(scores), scores, -np.inf)  # units without a score rank last
        order = np.lexsort((np.arange(n_units), -scores))
        return order[:choice.count].astype(np.int64)
    bad = [i for i in choice.indices if i >= n_units]
    if bad:
        raise InvalidSelectionError(f"--units: readout index {bad[0]} is out of range for {units.scan_id}, which has "
                                    f"{n_units} units (0-{n_units - 1})")
    return np.asarray(sorted(choice.indices), dtype=np.int64)
