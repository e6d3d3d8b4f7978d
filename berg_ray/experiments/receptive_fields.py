"""Receptive-field experiment: ON/OFF dots on a grid -> sweep -> RF centres vs readout positions on the monitor."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from berg_ray.analysis.receptive_fields import rf_centres, rf_maps
from berg_ray.analysis.retinotopy import model_readout_monitor_positions, rf_agreement
from berg_ray.checkpoint.release import load_model, read_scan_units
from berg_ray.experiments.outputs import ExperimentDir
from berg_ray.experiments.responses import sweep_mean_responses
from berg_ray.experiments.stimulus_sets import BLANK_ID, StimulusSet


def rf_from_responses(stimulus_set: StimulusSet, responses: pd.DataFrame, grid: tuple[int, int]
                      ) -> tuple[np.ndarray, np.ndarray]:
    """RF maps (U, rows, cols) as |ON map| + |OFF map| against the blank, and RF centres (U, 2) in pixels."""
    n = grid[0] * grid[1]
    baseline = responses.loc[BLANK_ID].to_numpy()
    maps = sum(np.abs(rf_maps(responses.loc[[f"dot-{k:04d}_{p}" for k in range(n)]].to_numpy(), *grid, baseline))
               for p in ("on", "off"))
    positions = np.array([[stimulus_set.conditions[f"dot-{k:04d}_on"][axis] for axis in ("col", "row")]
                          for k in range(n)])
    return maps, rf_centres(maps, positions)


def run_rf_experiment(stimulus_set: StimulusSet, grid: tuple[int, int], berg_dir: str, out_dir: str | Path,
                      sessions: list[str] | str, address: str | None = None, show_progress: bool = True,
                      s3_endpoint_url: str | None = None, pool: Mapping[str, Any] | None = None
                      ) -> dict[str, pd.DataFrame]:
    """Run the RF set (its stimuli and sweep under ``out_dir/rf/``, a local directory or s3:// prefix, see
    berg_ray.experiments.outputs) and write, under ``out_dir/rf/``:

    * ``{scan}.parquet``: per unit ids, area, field, ``rf_col`` / ``rf_row`` (RF centre, monitor pixels),
      ``readout_col`` / ``readout_row`` (readout position mapped to the monitor) and ``distance_px``;
    * ``{scan}.png``: figures.rf_figure;
    * ``summary.parquet``: per scan the units, median distance and correlations of x and of y.

    ``pool``: further options of the sweep (SweepArgs fields: device, precision, verbose, num_workers, min_workers,
    max_workers, resource_wait_s, ...; berg_ray.cli.options.encoder_pool_args).

    Returns:
        {"summary": summary table, scan: per-unit table, ...}.
    """
    from berg_ray.experiments.figures import rf_figure

    work_dir = ExperimentDir(out_dir, "rf", s3_endpoint_url)
    _, responses = sweep_mean_responses(stimulus_set, berg_dir, work_dir, sessions, address, show_progress,
                         pool)
    release = work_dir.local_release(berg_dir)
    tables, summary = {}, []
    for scan, scan_responses in sorted(responses.items()):
        _, centres = rf_from_responses(stimulus_set, scan_responses, grid)
        mapped = model_readout_monitor_positions(load_model(release, [scan], device="cpu"), scan)
        units = read_scan_units(release, scan)
        table = pd.DataFrame({
            "session": units.scan_id.session, "scan": units.scan_id.scan, "readout_id": units.readout_id,
            "unit_id": units.unit_id, "area": units.area, "field": units.field,
            "rf_col": centres[:, 0], "rf_row": centres[:, 1], "readout_col": mapped[:, 0],
            "readout_row": mapped[:, 1], "distance_px": np.hypot(*(centres - mapped).T)})
        work_dir.write_table(table, f"{scan}.parquet")
        title = f"{scan}: RF centres (flashing dots, {grid[0]}x{grid[1]} grid) vs readout positions; {units.weights}"
        work_dir.write_figure(lambda path: rf_figure(table, title, path), f"{scan}.png")
        tables[scan] = table
        summary.append({"train_session": scan, **rf_agreement(centres, mapped)})
    summary_table = pd.DataFrame(summary)
    work_dir.write_table(summary_table, "summary.parquet")
    return {"summary": summary_table, **tables}
