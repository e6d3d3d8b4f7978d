"""Run a stimulus set through the sweep machinery and read the mean responses back per scan."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from berg_ray.errors import BergRayError
from berg_ray.experiments.outputs import ExperimentDir
from berg_ray.experiments.stimulus_sets import StimulusSet
from berg_ray.sweep import SweepResult, run


def sweep_responses(stimulus_set: StimulusSet, berg_dir: str, work_dir: ExperimentDir, sessions: list[str] | str,
                    address: str | None = None, show_progress: bool = True, pool: Mapping[str, Any] | None = None
                    ) -> tuple[SweepResult, pd.DataFrame]:
    """Write the stimuli under ``work_dir/stimuli`` and sweep them into ``work_dir/sweep`` with per-frame responses
    after the burn-in (resumable: a re-run computes only what is missing). ``berg_dir`` goes to the sweep as given
    (an s3:// release is fetched once per node by the encoders); ``pool``: the encoder-pool options of the sweep
    (SweepArgs fields device, num_workers, min_workers, max_workers, resource_wait_s, ...).

    Returns:
        (the sweep's result, its rows: ``stimulus_id``, ``train_session`` and ``responses``, per row an object
        array of (U,) float32 arrays, one per frame after the burn-in).
    """
    return _sweep(stimulus_set, berg_dir, work_dir, sessions, "none", address, show_progress, pool)


def sweep_mean_responses(stimulus_set: StimulusSet, berg_dir: str, work_dir: ExperimentDir,
                         sessions: list[str] | str,
                         address: str | None = None, show_progress: bool = True,
                         pool: Mapping[str, Any] | None = None) -> tuple[SweepResult, dict[str, pd.DataFrame]]:
    """As :func:`sweep_responses`, with the mean over the frames after the burn-in.

    Returns:
        (the sweep's result, scan -> DataFrame indexed by stimulus id (sorted) whose columns are the readout
        indices 0..U-1).
    """
    result, rows = _sweep(stimulus_set, berg_dir, work_dir, sessions, "mean", address, show_progress, pool)
    by_scan = {}
    for scan, part in rows.groupby("train_session"):
        part = part.sort_values("stimulus_id")
        by_scan[str(scan)] = pd.DataFrame(np.stack(part["responses"].to_numpy()).astype(np.float64),
                                          index=part["stimulus_id"].to_numpy())
    return result, by_scan


def _sweep(stimulus_set: StimulusSet, berg_dir: str, work_dir: ExperimentDir, sessions: list[str] | str,
           reduce: str, address: str | None, show_progress: bool, pool: Mapping[str, Any] | None
           ) -> tuple[SweepResult, pd.DataFrame]:
    work_dir.claim(stimulus_set)
    work_dir.write_stimuli(stimulus_set)
    result = run(berg_dir=str(berg_dir), input=work_dir.stimuli_uri, output=work_dir.sweep_uri, sessions=sessions,
                 reduce=reduce, skip_frames=stimulus_set.burn_in, address=address, show_progress=show_progress,
                 s3_endpoint_url=work_dir.s3_endpoint_url, **(pool or {}))
    if not result.ok:
        raise BergRayError(f"the sweep failed for {len(result.errors)} stimuli (see {work_dir.sweep_uri}/_errors/); "
                           f"first: {result.errors[0]}")
    rows = work_dir.read_sweep(["stimulus_id", "train_session", "responses"])
    return result, rows[rows["stimulus_id"].isin(set(stimulus_set.videos))]
