"""Direction-tuning experiment: drifting gratings -> sweep -> direction_tuning -> per-scan table vs in vivo."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from berg_ray.analysis.invivo import compare_with_invivo, tuning_table
from berg_ray.analysis.tuning import direction_tuning
from berg_ray.analysis.retinotopy import model_readout_monitor_positions
from berg_ray.checkpoint.release import load_model, read_scan_units
from berg_ray.experiments.outputs import ExperimentDir
from berg_ray.experiments.responses import sweep_mean_responses
from berg_ray.experiments.stimulus_sets import StimulusSet


def direction_curves(stimulus_set: StimulusSet, responses: pd.DataFrame) -> pd.DataFrame:
    """Mean response per direction (index: direction in deg, sorted; columns: units) from the mean response per
    stimulus (index: stimulus ids), averaging the repeats of each direction."""
    directions = pd.Series({sid: c["direction_deg"] for sid, c in stimulus_set.conditions.items()})
    return responses.groupby(directions.reindex(responses.index).to_numpy()).mean().sort_index()


def run_tuning_experiment(stimulus_set: StimulusSet, berg_dir: str, out_dir: str | Path, sessions: list[str] | str,
                          address: str | None = None, show_progress: bool = True,
                          s3_endpoint_url: str | None = None, pool: Mapping[str, Any] | None = None
                      ) -> dict[str, pd.DataFrame]:
    """Run the tuning set (its stimuli and sweep under ``out_dir/tuning/``, a local directory or s3:// prefix,
    see berg_ray.experiments.outputs) and write, under ``out_dir/tuning/``:

    * ``{scan}.parquet``: one row per unit: ids, area, field, the six tuning columns, ``invivo_*`` and
      ``readout_col`` / ``readout_row`` (the readout position mapped to the monitor, pixels);
    * ``{scan}.png``: figures.tuning_figure;
    * ``summary.parquet``: per scan and area the units, median |d pref_ori| and |d pref_dir| (deg) and the
      correlations of OSI, DSI, gOSI, gDSI with in vivo.

    ``pool``: further options of the sweep (SweepArgs fields: device, precision, verbose, num_workers, min_workers,
    max_workers, resource_wait_s, ...; berg_ray.cli.options.encoder_pool_args).

    Returns:
        {"summary": summary table, scan: per-unit table, ...}.
    """
    from berg_ray.experiments.figures import tuning_figure

    work_dir = ExperimentDir(out_dir, "tuning", s3_endpoint_url)
    _, responses = sweep_mean_responses(stimulus_set, berg_dir, work_dir, sessions, address, show_progress,
                         pool)
    release = work_dir.local_release(berg_dir)

    tables, summaries = {}, []
    for scan, scan_responses in sorted(responses.items()):
        curves = direction_curves(stimulus_set, scan_responses)
        tuning = direction_tuning(curves.to_numpy(), curves.index.to_numpy(dtype=np.float64))
        units = read_scan_units(release, scan)
        table = tuning_table(units, tuning)
        mapped = model_readout_monitor_positions(load_model(release, [scan], device="cpu"), scan)
        table["readout_col"], table["readout_row"] = mapped[:, 0], mapped[:, 1]
        work_dir.write_table(table, f"{scan}.parquet")
        title = f"{scan}: direction tuning in silico ({len(curves)} directions; {units.weights})"
        work_dir.write_figure(lambda path: tuning_figure(table, curves, title, path), f"{scan}.png")
        tables[scan] = table
        summaries.append(compare_with_invivo(table).rename_axis("area").reset_index().assign(train_session=scan))
    summary = pd.concat(summaries, ignore_index=True)
    summary = summary[["train_session", *[c for c in summary.columns if c != "train_session"]]]
    work_dir.write_table(summary, "summary.parquet")
    return {"summary": summary, **tables}
