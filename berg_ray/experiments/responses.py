"""Run a stimulus set through the sweep machinery and read the mean responses back per scan."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from berg_ray.errors import BergRayError
from berg_ray.experiments.stimulus_sets import StimulusSet
from berg_ray.sweep import SweepResult, run

STIMULI_DIR, SWEEP_DIR, EXPERIMENT_MANIFEST = "stimuli", "sweep", "_experiment.json"


def write_stimuli(stimulus_set: StimulusSet, directory: Path) -> None:
    """Save every video as ``{id}.npy`` (skipping files already there: :func:`claim_work_dir` guarantees they come
    from the same parameters)."""
    directory.mkdir(parents=True, exist_ok=True)
    for stimulus_id, video in stimulus_set.videos.items():
        path = directory / f"{stimulus_id}.npy"
        if path.exists():
            continue
        handle, temp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".npy.part")
        with os.fdopen(handle, "wb") as file:
            np.save(file, video)
        os.replace(temp, path)


def sweep_responses(stimulus_set: StimulusSet, berg_dir: str, work_dir: Path, sessions: list[str] | str,
                    address: str | None = None, show_progress: bool = True) -> tuple[SweepResult, pd.DataFrame]:
    """Write the stimuli under ``work_dir/stimuli`` and sweep them into ``work_dir/sweep`` with per-frame responses
    after the burn-in (resumable: a re-run computes only what is missing).

    Returns:
        (the sweep's result, its rows: ``stimulus_id``, ``train_session`` and ``responses``, per row an object
        array of (U,) float32 arrays, one per frame after the burn-in).
    """
    return _sweep(stimulus_set, berg_dir, work_dir, sessions, "none", address, show_progress)


def sweep_mean_responses(stimulus_set: StimulusSet, berg_dir: str, work_dir: Path, sessions: list[str] | str,
                         address: str | None = None, show_progress: bool = True
                         ) -> tuple[SweepResult, dict[str, pd.DataFrame]]:
    """As :func:`sweep_responses`, with the mean over the frames after the burn-in.

    Returns:
        (the sweep's result, scan -> DataFrame indexed by stimulus id (sorted) whose columns are the readout
        indices 0..U-1).
    """
    result, rows = _sweep(stimulus_set, berg_dir, work_dir, sessions, "mean", address, show_progress)
    by_scan = {}
    for scan, part in rows.groupby("train_session"):
        part = part.sort_values("stimulus_id")
        by_scan[str(scan)] = pd.DataFrame(np.stack(part["responses"].to_numpy()).astype(np.float64),
                                          index=part["stimulus_id"].to_numpy())
    return result, by_scan


def _sweep(stimulus_set: StimulusSet, berg_dir: str, work_dir: Path, sessions: list[str] | str, reduce: str,
           address: str | None, show_progress: bool) -> tuple[SweepResult, pd.DataFrame]:
    input_dir, output_dir = work_dir / STIMULI_DIR, work_dir / SWEEP_DIR
    claim_work_dir(stimulus_set, work_dir)
    write_stimuli(stimulus_set, input_dir)
    result = run(berg_dir=str(berg_dir), input=str(input_dir), output=str(output_dir), sessions=sessions,
                 reduce=reduce, skip_frames=stimulus_set.burn_in, address=address, show_progress=show_progress)
    if not result.ok:
        raise BergRayError(f"the sweep failed for {len(result.errors)} stimuli (see {output_dir}/_errors/); first: "
                           f"{result.errors[0]}")
    rows = pd.read_parquet(output_dir, columns=["stimulus_id", "train_session", "responses"])
    return result, rows[rows["stimulus_id"].isin(set(stimulus_set.videos))]


def claim_work_dir(stimulus_set: StimulusSet, work_dir: Path) -> None:
    """Record the set's parameters in ``work_dir/_experiment.json``, or check they match the recorded ones (the
    sweep would otherwise reuse rows of same-named stimuli made with other settings).

    Raises:
        BergRayError: ``work_dir`` holds an experiment made with other parameters.
    """
    manifest = work_dir / EXPERIMENT_MANIFEST
    wanted = json.loads(json.dumps(stimulus_set.parameters))
    if manifest.is_file():
        found = json.loads(manifest.read_text())
        if found != wanted:
            raise BergRayError(f"{work_dir} already holds an experiment made with {found}, but this run asks for "
                               f"{wanted}; re-run with the same settings (it resumes) or use another --out")
        return
    work_dir.mkdir(parents=True, exist_ok=True)
    temp = manifest.with_name(f".{manifest.name}.tmp")
    temp.write_text(json.dumps(wanted, sort_keys=True, indent=1))
    os.replace(temp, manifest)


def write_table(table: pd.DataFrame, path: Path) -> None:
    """Write a Parquet file so that ``path`` appears only complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    table.to_parquet(temp, index=False)
    os.replace(temp, path)
