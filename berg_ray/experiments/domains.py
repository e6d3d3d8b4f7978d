"""Out-of-distribution domains experiment: one stimulus per domain -> per-frame responses -> population summary."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from berg_ray.checkpoint.release import read_scan_units
from berg_ray.experiments.outputs import ExperimentDir
from berg_ray.experiments.responses import sweep_responses
from berg_ray.experiments.stimulus_sets import DOMAINS, StimulusSet


def run_domains_experiment(stimulus_set: StimulusSet, berg_dir: str, out_dir: str | Path,
                           sessions: list[str] | str, address: str | None = None, show_progress: bool = True,
                           s3_endpoint_url: str | None = None, pool: Mapping[str, Any] | None = None
                           ) -> dict[str, pd.DataFrame]:
    """Run the domain set (its stimuli and the per-frame sweep under ``out_dir/domains/``, a local directory or
    s3:// prefix, see berg_ray.experiments.outputs) and write, there:

    * ``{scan}.parquet``: per unit ids, area, field and ``mean_{domain}``, the unit's mean response to each domain
      over the frames after the burn-in (the per-frame responses stay in ``sweep/``);
    * ``{scan}.png``: figures.domains_figure (population mean response over time, per-unit means per domain).

    ``pool``: further options of the sweep (SweepArgs fields: device, precision, verbose, num_workers, min_workers,
    max_workers, resource_wait_s, ...; berg_ray.cli.options.encoder_pool_args).

    Returns:
        scan -> per-unit table.
    """
    from berg_ray.experiments.figures import domains_figure

    work_dir = ExperimentDir(out_dir, "domains", s3_endpoint_url)
    _, rows = sweep_responses(stimulus_set, berg_dir, work_dir, sessions, address, show_progress,
                           pool)
    release = work_dir.local_release(berg_dir)
    tables = {}
    for scan, part in rows.groupby("train_session"):
        scan = str(scan)
        per_frame = {row.stimulus_id: np.stack(row.responses).astype(np.float64) for row in part.itertuples()}
        units = read_scan_units(release, scan)
        table = pd.DataFrame({"session": units.scan_id.session, "scan": units.scan_id.scan,
                              "readout_id": units.readout_id, "unit_id": units.unit_id, "area": units.area,
                              "field": units.field})
        for domain in DOMAINS:
            table[f"mean_{domain}"] = per_frame[domain].mean(axis=0)
        work_dir.write_table(table, f"{scan}.parquet")
        title = f"{scan}: population responses per stimulus domain ({units.weights})"
        work_dir.write_figure(lambda path: domains_figure({d: per_frame[d] for d in DOMAINS}, title, path),
                              f"{scan}.png")
        tables[scan] = table
    return tables
