"""MEI experiment: choose units, optimise their MEIs over Ray actors (resumable per unit), validate, tabulate.

Under ``<out>/mei/`` (a local directory or s3:// prefix, berg_ray.experiments.outputs):

* ``{scan}/readout-{id:05d}.npy`` + ``.json``: each unit's MEI (uint8 [F, 144, 256]) and record (mei_store.py);
* ``{scan}.parquet``: one row per chosen unit: ids, area, field, the readout position mapped to the monitor,
  steps, objective, log-rate and penalty at the last step, and the validation columns (mei_validation.py);
* ``{scan}.png``: the MEIs with each unit's readout position marked, and the unit-by-unit response matrix;
* ``summary.parquet``: per scan the fraction of MEIs that do not beat gratings, noise, other units' MEIs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from berg_ray.config import MEI_UNITS_PER_BATCH, MEI_VALIDATION_DIRECTIONS, MEI_VALIDATION_REPEATS
from berg_ray.experiments.mei_store import KIND, done_units, read_mei, read_record, write_unit
from berg_ray.experiments.mei_validation import validation_columns, validation_ids, validation_summary
from berg_ray.experiments.mei_workers import Job, mei_workers
from berg_ray.experiments.outputs import ExperimentDir
from berg_ray.experiments.stimulus_sets import StimulusSet
from berg_ray.experiments.unit_choice import UnitChoice, choose_units
from berg_ray.mei import MeiResult, MeiSettings


@dataclass
class MeiPlan:
    """What a run will do: per scan the chosen readout ids and the batches still to optimise."""

    settings: MeiSettings
    units_per_batch: int
    validation: tuple[int, int]
    chosen: dict[str, np.ndarray] = field(default_factory=dict)
    batches: list[tuple[str, list[int]]] = field(default_factory=list)

    @property
    def n_units(self) -> int:
        return sum(len(c) for c in self.chosen.values())

    @property
    def n_todo(self) -> int:
        return sum(len(b) for _, b in self.batches)

    def cost(self) -> str:
        """The cost in one line: units, batches, steps, frames and forward+backward frame-passes (+ validation)."""
        s = self.settings
        passes = self.n_todo * s.steps * s.frames
        n_validation = 2 * self.validation[0] * self.validation[1]
        check = sum(len(c) + n_validation for c in self.chosen.values()) * s.frames
        return (f"mei: {self.n_todo} of {self.n_units} units to optimise ({self.n_units - self.n_todo} done before) "
                f"in {len(self.batches)} batches of <= {self.units_per_batch}, {s.steps} steps x {s.frames} frames "
                f"({s.kind}): {passes:,} forward+backward frame-passes; validation: {check:,} inference frames "
                f"over {len(self.chosen)} scan(s)")


def plan_meis(work_dir: ExperimentDir, release: Path, sessions: list[str], choice: UnitChoice,
              settings: MeiSettings, units_per_batch: int = MEI_UNITS_PER_BATCH,
              validation: tuple[int, int] = (MEI_VALIDATION_DIRECTIONS, MEI_VALIDATION_REPEATS)) -> MeiPlan:
    """Choose each scan's units (InvalidSelectionError for an index out of range) and batch those not yet done."""
    from berg_ray.checkpoint.release import read_scan_units

    plan = MeiPlan(settings, units_per_batch, validation)
    done = done_units(work_dir)
    for scan in sessions:
        chosen = choose_units(choice, read_scan_units(release, scan))
        plan.chosen[scan] = chosen
        todo = [int(r) for r in chosen if int(r) not in done.get(scan, set())]
        plan.batches += [(scan, todo[i:i + units_per_batch]) for i in range(0, len(todo), units_per_batch)]
    return plan


def experiment_parameters(settings: MeiSettings, validation: tuple[int, int]) -> StimulusSet:
    """The run's parameters as the location records them (a re-run with other ones is refused)."""
    parameters = {"set": KIND, **settings.record(), "validation_directions": validation[0],
                  "validation_repeats": validation[1]}
    return StimulusSet({}, settings.burn_in, {}, parameters)


def run_mei_experiment(berg_dir: str, out_dir: str | Path, sessions: list[str], choice: UnitChoice,
                       settings: MeiSettings, units_per_batch: int = MEI_UNITS_PER_BATCH,
                       validation: tuple[int, int] = (MEI_VALIDATION_DIRECTIONS, MEI_VALIDATION_REPEATS),
                       address: str | None = None, show_progress: bool = True, s3_endpoint_url: str | None = None,
                       pool: Mapping[str, Any] | None = None, use_ray: bool = True,
                       announce: Callable[[str], None] | None = None) -> dict[str, pd.DataFrame]:
    """Optimise, store and validate the MEIs of ``choice``'s units of every scan of ``sessions`` (see the module
    docstring for the files).

    Args:
        berg_dir: the release (local or s3://).
        out_dir: ``--out``; files go under ``out_dir/mei/``.
        sessions: canonical scan ids.
        choice: the parsed ``--units``.
        settings: the optimisation's settings (recorded; a re-run must use the same ones).
        units_per_batch: units optimised together (one video each) by one actor call.
        validation: (directions, repeats) of the grating and noise validation sets.
        address, pool: the Ray cluster and the pool options (berg_ray.cli.options.encoder_pool_args, precision,
            verbose); ``use_ray`` False computes in this process instead.
        announce: called with the cost line before any compute (the CLI prints it).

    Returns:
        {"summary": summary table, scan: per-unit table, ...}.
    """
    work_dir = ExperimentDir(out_dir, KIND, s3_endpoint_url)
    work_dir.claim(experiment_parameters(settings, validation))
    release = work_dir.local_release(berg_dir)
    plan = plan_meis(work_dir, release, sessions, choice, settings, units_per_batch, validation)
    if announce is not None:
        announce(plan.cost())
    worker_args = dict(berg_dir=str(berg_dir), s3_endpoint_url=s3_endpoint_url, scans=sessions,
                       precision=(pool or {}).get("precision", "float32"), validation=validation)
    pool = {**(pool or {}), "batch_size": units_per_batch, "chunk_frames": settings.frames}
    with mei_workers(worker_args, len(plan.batches) + len(sessions), use_ray, address, pool, show_progress) as run:
        _optimise(run, work_dir, plan, show_progress)
        responses = _validation_rates(run, work_dir, plan, show_progress)
    return _write_tables(work_dir, release, plan, responses)


def _optimise(run, work_dir: ExperimentDir, plan: MeiPlan, show_progress: bool) -> None:
    """Optimise every planned batch, writing each unit's MEI and record as its batch returns."""
    from tqdm.auto import tqdm

    with tqdm(total=plan.n_todo, unit=" unit", desc="mei", disable=not show_progress) as bar:
        def save(job: Job, result: tuple[MeiResult, str]) -> None:
            _save_batch(work_dir, job, *result, plan.settings)
            bar.update(len(job.key[1]))

        run([Job("optimise", (scan, ids, plan.settings), (scan, ids)) for scan, ids in plan.batches], save)


def _save_batch(work_dir: ExperimentDir, job: Job, result: MeiResult, node_id: str, settings: MeiSettings) -> None:
    scan, ids = job.key
    for b, readout_id in enumerate(ids):
        record = {"scan": scan, "readout_id": readout_id, "steps": settings.steps, "settings": settings.record(),
                  "objective": float(result.objective[b]), "log_rate": float(result.log_rate[b]),
                  "penalty": float(result.penalty[b]), "objective_start": float(result.history[0, b]),
                  "history": [float(v) for v in result.history[:, b]], "node_id": node_id,
                  "written_unix_s": time.time()}
        write_unit(work_dir, scan, readout_id, result.videos[b], record)


def _validation_rates(run, work_dir: ExperimentDir, plan: MeiPlan, show_progress: bool
                      ) -> dict[str, dict[str, np.ndarray]]:
    """scan -> {"meis": (N, N), "grating": (S, N), "noise": (S, N)} mean rates of the chosen units. The driver
    reads the stored MEIs (as each job is handed out) and sends them; the actors generate the validation sets."""
    from tqdm.auto import tqdm

    s, per_job = plan.settings, plan.units_per_batch
    jobs = []
    for scan, chosen in plan.chosen.items():
        sources = {"meis": [int(r) for r in chosen], **validation_ids(*plan.validation)}
        for kind, ids in sources.items():
            for start in range(0, len(ids), per_job):
                part = ids[start:start + per_job]
                args = ((lambda scan=scan, part=part, chosen=chosen: (
                    scan, "videos", np.stack([read_mei(work_dir, scan, r) for r in part]), chosen, s.frames,
                    s.burn_in)) if kind == "meis" else (scan, "validation", part, chosen, s.frames, s.burn_in))
                jobs.append(Job("rates", args, (scan, kind, start)))
    parts: dict[tuple[str, str], dict[int, np.ndarray]] = {}
    with tqdm(total=len(jobs), unit=" batch", desc="validate", disable=not show_progress) as bar:
        def keep(job: Job, rates: np.ndarray) -> None:
            scan, kind, start = job.key
            parts.setdefault((scan, kind), {})[start] = rates
            bar.update(1)

        run(jobs, keep)
    out: dict[str, dict[str, np.ndarray]] = {}
    for (scan, kind), chunks in parts.items():
        out.setdefault(scan, {})[kind] = np.concatenate([chunks[k] for k in sorted(chunks)])
    return out


def _write_tables(work_dir: ExperimentDir, release: Path, plan: MeiPlan, responses: Mapping[str, Mapping]
                  ) -> dict[str, pd.DataFrame]:
    from berg_ray.analysis.retinotopy import model_readout_monitor_positions
    from berg_ray.checkpoint.release import load_model, read_scan_units
    from berg_ray.experiments.mei_figure import mei_figure

    tables, summary = {}, []
    sets = validation_ids(*plan.validation)
    for scan, chosen in plan.chosen.items():
        units = read_scan_units(release, scan)
        mapped = model_readout_monitor_positions(load_model(release, [scan], device="cpu"), scan)[chosen]
        records = [read_record(work_dir, scan, int(r)) for r in chosen]
        rates = responses[scan]
        checks = validation_columns(chosen, rates["meis"], {k: (sets[k], rates[k]) for k in sets})
        table = pd.DataFrame({
            "session": units.scan_id.session, "scan": units.scan_id.scan, "readout_id": chosen,
            "unit_id": units.unit_id[chosen], "area": units.area[chosen], "field": units.field[chosen],
            "readout_col": mapped[:, 0], "readout_row": mapped[:, 1],
            "steps": [r["steps"] for r in records], "objective": [r["objective"] for r in records],
            "log_rate": [r["log_rate"] for r in records], "penalty": [r["penalty"] for r in records],
            "node_id": [r.get("node_id", "") for r in records]})
        table = pd.concat([table, checks.drop(columns="readout_id")], axis=1)
        work_dir.write_table(table, f"{scan}.parquet")
        title = (f"{scan}: {plan.settings.kind} MEIs ({plan.settings.frames} frames, {plan.settings.steps} steps; "
                 f"{units.weights})")
        work_dir.write_figure(lambda path: mei_figure(work_dir, scan, table, rates["meis"], title, path),
                              f"{scan}.png")
        tables[scan] = table
        summary.append(validation_summary(table, scan))
    summary_table = pd.DataFrame(summary)
    work_dir.write_table(summary_table, "summary.parquet")
    return {"summary": summary_table, **tables}
