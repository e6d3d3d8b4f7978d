"""Validation of MEIs: each against a drifting-grating set, a directional-noise set and the other units' MEIs.

Every video has the MEIs' F frames and starts at frame 0 like them (no grey lead-in), and every rate is the mean
over frames ``burn_in``.. through the ordinary inference path, so all compete on equal terms. A unit's MEI is
valid when it drives the unit more than every grating, every noise video and every other unit's MEI.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from berg_ray.stimuli import directional_pink_noise, drifting_grating

KINDS = ("grating", "noise")


def validation_ids(directions: int, repeats: int) -> dict[str, list[str]]:
    """kind -> stimulus ids ``{kind}-{k:03d}-{r:02d}``: direction k x 360 / directions, repeat r (the grating's
    phase r x 360 / repeats, the noise's seed r)."""
    return {kind: [f"{kind}-{k:03d}-{r:02d}" for k in range(directions) for r in range(repeats)] for kind in KINDS}


def validation_video(stimulus_id: str, frames: int, directions: int, repeats: int) -> np.ndarray:
    """The uint8 (F, 144, 256) video of one id of :func:`validation_ids`."""
    kind, k, r = stimulus_id.split("-")
    direction = int(k) * 360.0 / directions
    if kind == "grating":
        return drifting_grating(direction, frames, phase_deg=int(r) * 360.0 / repeats)
    return directional_pink_noise(direction, frames, seed=int(r))


def validation_columns(readout_ids: np.ndarray, meis: np.ndarray, sets: dict[str, tuple[list[str], np.ndarray]]
                       ) -> pd.DataFrame:
    """Per unit the validation columns.

    Args:
        readout_ids: (N,) the units, in the order of ``meis``' rows and columns.
        meis: (N, N) mean rate of unit j (column) to the MEI of unit i (row).
        sets: kind -> (stimulus ids (S,), (S, N) mean rates of the units to them).

    Returns:
        One row per unit: ``mei_rate``; per kind ``best_{kind}_rate``, ``best_{kind}`` (id), ``ratio_{kind}``
        (mei_rate / best), ``beats_{kind}``; ``best_other_mei_rate``, ``best_other_mei`` (readout id, -1 when
        alone), ``ratio_other_mei``, ``beats_other_meis`` (True when alone); ``valid`` (all beats).
    """
    own = np.diagonal(meis).astype(np.float64)
    columns: dict[str, object] = {"readout_id": readout_ids, "mei_rate": own}
    beats = []
    for kind, (ids, rates) in sets.items():
        best = rates.argmax(axis=0)
        best_rate = rates[best, np.arange(len(own))].astype(np.float64)
        columns.update({f"best_{kind}_rate": best_rate, f"best_{kind}": np.asarray(ids, dtype=object)[best],
                        f"ratio_{kind}": own / best_rate, f"beats_{kind}": own > best_rate})
        beats.append(own > best_rate)
    others = np.where(np.eye(len(own), dtype=bool), -np.inf, meis)
    best_other = others.argmax(axis=0) if len(own) > 1 else np.full(len(own), -1)
    other_rate = (others[best_other, np.arange(len(own))] if len(own) > 1 else np.full(len(own), np.nan))
    columns.update({"best_other_mei_rate": other_rate,
                    "best_other_mei": np.where(best_other >= 0, np.asarray(readout_ids)[best_other], -1),
                    "ratio_other_mei": own / other_rate,
                    "beats_other_meis": ~(other_rate >= own)})  # NaN (alone): beats
    beats.append(columns["beats_other_meis"])
    columns["valid"] = np.logical_and.reduce(beats)
    return pd.DataFrame(columns)


def validation_summary(table: pd.DataFrame, scan: str) -> dict:
    """One scan's summary row: units, the fraction of MEIs that do NOT beat each comparison, median ratios."""
    row: dict[str, object] = {"train_session": scan, "units": len(table)}
    for kind in (*KINDS, "other_meis"):
        row[f"fraction_not_beating_{kind}"] = float((~table[f"beats_{kind}"].astype(bool)).mean())
    row["fraction_invalid"] = float((~table["valid"].astype(bool)).mean())
    for kind in (*KINDS, "other_mei"):
        row[f"median_ratio_{kind}"] = float(table[f"ratio_{kind}"].median())
    return row
