"""Direction-tuning experiment: drifting gratings -> sweep -> direction_tuning -> per-scan table vs in vivo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from berg_ray.analysis.invivo import compare_with_invivo, tuning_table
from berg_ray.analysis.tuning import direction_tuning
from berg_ray.checkpoint.release import read_scan_units
from berg_ray.experiments.responses import sweep_mean_responses, write_table
from berg_ray.experiments.stimulus_sets import StimulusSet


def tuning_from_responses(stimulus_set: StimulusSet, responses: pd.DataFrame) -> pd.DataFrame:
    """direction_tuning of one scan from its mean response per stimulus (rows: ids, columns: units), averaging
    the repeats of each direction."""
    directions = pd.Series({sid: c["direction_deg"] for sid, c in stimulus_set.conditions.items()})
    per_direction = responses.groupby(directions.reindex(responses.index).to_numpy()).mean().sort_index()
    return direction_tuning(per_direction.to_numpy(), per_direction.index.to_numpy(dtype=np.float64))


def run_tuning_experiment(stimulus_set: StimulusSet, berg_dir: str, out_dir: Path, sessions: list[str] | str,
                          address: str | None = None, show_progress: bool = True) -> dict[str, pd.DataFrame]:
    """Run the tuning set and write ``out_dir/tuning/{scan}.parquet`` (one row per unit: ids, area, field, the
    six tuning columns and ``invivo_*``) and ``out_dir/tuning/summary.parquet`` (per scan and area: units,
    median |d pref_ori| and |d pref_dir| in degrees, correlations of OSI, DSI, gOSI, gDSI with in vivo).

    Returns:
        {"summary": summary table, scan: per-unit table, ...}.
    """
    _, responses = sweep_mean_responses(stimulus_set, berg_dir, out_dir, sessions, address, show_progress)
    tables, summaries = {}, []
    for scan, scan_responses in sorted(responses.items()):
        table = tuning_table(read_scan_units(berg_dir, scan), tuning_from_responses(stimulus_set, scan_responses))
        write_table(table, out_dir / "tuning" / f"{scan}.parquet")
        tables[scan] = table
        summaries.append(compare_with_invivo(table).rename_axis("area").reset_index().assign(train_session=scan))
    summary = pd.concat(summaries, ignore_index=True)
    summary = summary[["train_session", *[c for c in summary.columns if c != "train_session"]]]
    write_table(summary, out_dir / "tuning" / "summary.parquet")
    return {"summary": summary, **tables}
