"""Structure–function properties: per-unit readout features and positions, per-pair similarity, RF distance and
in-silico signal correlation (``berg-ray experiment properties``).

Definitions (berg_ray/analysis/structure_function.py has the geometry):

* features: the unit's readout feature weights of the 4 streams concatenated stream-major (512 float32 values,
  entry ``s * 128 + c``: stream s, core channel c); ``feature_cosine`` of a pair is their cosine similarity.
* readout position on the monitor: ``readout_col`` / ``readout_row`` (pixels, analysis/retinotopy.py), and
  ``azimuth_deg`` / ``elevation_deg``: the unit's retina ray after the default eye rotation, in degrees relative to
  the direction of the monitor centre (azimuth positive rightwards, elevation upwards); ``rf_distance_deg`` of a
  pair is the angle between the two rays (great-circle distance).
* ``signal_corr``: Pearson correlation of the two units' per-frame responses over every frame after the burn-in
  of every stimulus (sorted by stimulus id, concatenated); NaN when either unit's responses are constant.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from berg_ray.analysis.retinotopy import readout_monitor_positions
from berg_ray.analysis.structure_function import (angle_matrix, cosine_similarity_matrix, feature_vectors, n_pairs,
                                                  pair_table, ray_degrees, signal_correlation_matrix, unit_rays)
from berg_ray.checkpoint.release import read_scan_params, read_scan_table, read_scan_units
from berg_ray.errors import InvalidArgumentError
from berg_ray.experiments.outputs import ExperimentDir
from berg_ray.experiments.responses import sweep_responses
from berg_ray.experiments.stimulus_sets import StimulusSet
from berg_ray.experiments.unit_choice import UnitChoice, choose_units
from berg_ray.units import ScanId

KIND = "properties"
UNIT_COLUMNS = ("readout_id", "unit_id", "area", "field", "readout_col", "readout_row", "azimuth_deg",
                "elevation_deg", "features")
PAIR_MEASURES = ("feature_cosine", "rf_distance_deg", "signal_corr")


@dataclass(frozen=True)
class ScanProperties:
    """One scan's result: ``units`` (one row per chosen unit) and ``pairs`` (one row per pair i < j)."""

    units: pd.DataFrame
    pairs: pd.DataFrame


def chosen_units(berg_dir: str | Path, scans: list[str], choice: UnitChoice) -> dict[str, np.ndarray]:
    """Readout indices of ``choice`` per scan (InvalidSelectionError for an index out of range)."""
    return {scan: choose_units(choice, read_scan_units(berg_dir, scan)) for scan in scans}


def check_pair_budget(chosen: Mapping[str, np.ndarray], max_pairs: int, units_flag: str) -> int:
    """The pairs of all scans; InvalidArgumentError (naming the count and --max-pairs) above ``max_pairs``."""
    total = sum(n_pairs(len(indices)) for indices in chosen.values())
    if total > max_pairs:
        per_scan = ", ".join(f"{scan}: {len(ix)} units" for scan, ix in chosen.items())
        raise InvalidArgumentError(f"--units {units_flag} gives {total:,} unit pairs ({per_scan}), more than "
                                   f"--max-pairs {max_pairs:,}; raise --max-pairs or choose fewer units "
                                   "(--units top:N or a list)")
    return total


def scan_unit_table(berg_dir: str | Path, scan: str, indices: np.ndarray) -> pd.DataFrame:
    """Per-unit properties (``UNIT_COLUMNS``) of readout ``indices`` of ``scan``, read from its per-scan weights
    (the core is not read): ids, area, field, the 512 readout features, the readout position on the monitor
    (pixels) and in degrees (module docstring)."""
    from berg_ray.model.functional import rotation_matrix
    from berg_ray.model.perspective import Perspective, eye_rotation
    from berg_ray.model.readout import Readout

    scan_id = ScanId.parse(scan)
    params = read_scan_params(berg_dir, scan_id, read_scan_table(berg_dir)[scan_id])
    units = read_scan_units(berg_dir, scan_id)
    with torch.no_grad():
        readout, perspective = Readout(params), Perspective(params)
        geometry = {k: v.double() for k, v in params.items() if k.startswith("perspective.")}
        rotation = eye_rotation(geometry).numpy()
        monitor_axes = rotation_matrix(geometry["perspective.monitor.angle"]).numpy()
        centre = geometry["perspective.monitor.center"].numpy()
        positions = readout.positions.double().numpy()[indices]
        features = feature_vectors(readout.weights.numpy())[indices]
        pixels = readout_monitor_positions(perspective.grid.numpy(), positions)
        rays = unit_rays(geometry["perspective.retina.grid"].numpy(), rotation, positions)
    degrees = ray_degrees(rays, monitor_axes, centre)
    return pd.DataFrame({
        "readout_id": units.readout_id[indices], "unit_id": units.unit_id[indices], "area": units.area[indices],
        "field": units.field[indices], "readout_col": pixels[:, 0], "readout_row": pixels[:, 1],
        "azimuth_deg": degrees[:, 0], "elevation_deg": degrees[:, 1], "features": list(features)})


def scan_rays(table: pd.DataFrame) -> np.ndarray:
    """Unit rays (U, 3) back from a unit table's degrees (the frame of the monitor centre: x forward)."""
    az, el = np.radians(table["azimuth_deg"].to_numpy()), np.radians(table["elevation_deg"].to_numpy())
    return np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1)


def frame_responses(rows: pd.DataFrame, scan: str) -> np.ndarray:
    """Per-frame responses (T, U) float64 of ``scan``: every frame after the burn-in of every stimulus, stimuli
    in sorted id order, concatenated (the samples of the signal correlation)."""
    part = rows[rows["train_session"] == scan].sort_values("stimulus_id")
    return np.concatenate([np.stack(list(frames)).astype(np.float64) for frames in part["responses"]], axis=0)


def scan_properties(units: pd.DataFrame, responses: np.ndarray) -> ScanProperties:
    """The pair table of one scan's ``units`` table and its chosen units' per-frame responses (T, U)."""
    measures = {
        "feature_cosine": cosine_similarity_matrix(np.stack(units["features"].to_list())),
        "rf_distance_deg": angle_matrix(scan_rays(units)),
        "signal_corr": signal_correlation_matrix(responses),
    }
    pairs = pair_table(units[["readout_id", "unit_id", "area"]], measures)
    return ScanProperties(units, pairs)


def run_properties_experiment(stimulus_set: StimulusSet, chosen: Mapping[str, np.ndarray], berg_dir: str,
                              out_dir: str | Path, address: str | None = None, show_progress: bool = True,
                              s3_endpoint_url: str | None = None, pool: Mapping[str, Any] | None = None
                              ) -> dict[str, ScanProperties]:
    """Sweep ``stimulus_set`` (per-frame responses of every unit; stimuli and sweep under ``out_dir/properties/``,
    a local directory or s3:// prefix; resumable) over the scans of ``chosen`` (scan -> readout indices, see
    :func:`chosen_units`) and write, under ``out_dir/properties/``:

    * ``{scan}_units.parquet``: ``UNIT_COLUMNS`` (``features``: a list column of 512 float32 per row);
    * ``{scan}_pairs.parquet``: per pair i < j ``readout_id_a/_b``, ``unit_id_a/_b``, ``area_a/_b`` and
      ``PAIR_MEASURES``;
    * ``{scan}_pairs.png``: properties_figure.pairs_figure.

    ``pool``: further options of the sweep (SweepArgs fields; berg_ray.cli.options.encoder_pool_args).
    """
    from berg_ray.experiments.properties_figure import pairs_figure

    work_dir = ExperimentDir(out_dir, KIND, s3_endpoint_url)
    _, rows = sweep_responses(stimulus_set, berg_dir, work_dir, sorted(chosen), address, show_progress, pool)
    release = work_dir.local_release(berg_dir)
    results = {}
    for scan, indices in sorted(chosen.items()):
        units = scan_unit_table(release, scan, indices)
        result = scan_properties(units, frame_responses(rows, scan)[:, indices])
        work_dir.write_table(result.units, f"{scan}_units.parquet")
        work_dir.write_table(result.pairs, f"{scan}_pairs.parquet")
        weights = read_scan_units(release, scan).weights
        title = (f"{scan}: {len(units)} units, {len(result.pairs):,} pairs; signal correlation over "
                 f"{len(stimulus_set.videos)} stimuli ({weights})")
        work_dir.write_figure(lambda path: pairs_figure(result.pairs, title, path), f"{scan}_pairs.png")
        results[scan] = result
    return results
