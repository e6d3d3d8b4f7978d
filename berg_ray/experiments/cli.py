"""``berg-ray experiment tuning|rf|domains``: build a stimulus set, run it through the sweep, analyse it."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable

from berg_ray.cli.options import (add_cluster_options, add_device_options, add_output_option, add_release_options,
                                  add_sessions_option, add_verbosity_options, encoder_pool_args)
from berg_ray.config import (ECHO_CHARS, EXPERIMENT_BURN_IN_FRAMES, EXPERIMENT_DIRECTIONS, EXPERIMENT_DOMAIN_FRAMES,
                             EXPERIMENT_REPEATS, EXPERIMENT_RF_DOT_FRAMES, EXPERIMENT_RF_GRID, EXPERIMENT_TRIAL_FRAMES)
from berg_ray.errors import BergRayError
from berg_ray.validation.numbers import ascii_int, int_flag


def add_experiment_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``experiment`` with its ``tuning``, ``rf``, ``domains``, ``mei`` and ``properties`` subcommands."""
    parser = subparsers.add_parser("experiment", help="in-silico experiments: tuning, receptive fields, domains, MEIs, structure-function properties",
                                   description="Generate a stimulus set, run it through the sweep machinery "
                                               "(local or --address cluster; resumable), analyse the Parquet output "
                                               "and write per-unit Parquet tables and figures under --out "
                                               "(a local directory or s3://bucket/prefix).")
    kinds = parser.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT")
    tuning = kinds.add_parser("tuning", help="drifting gratings -> pref_dir, pref_ori, OSI, DSI, gOSI, gDSI vs in vivo")
    _common(tuning)
    tuning.add_argument("--directions", type=int_flag, default=EXPERIMENT_DIRECTIONS, help="directions over 360 deg")
    tuning.add_argument("--repeats", type=int_flag, default=EXPERIMENT_REPEATS, help="spatial phases per direction")
    tuning.add_argument("--trial-frames", type=int_flag, default=EXPERIMENT_TRIAL_FRAMES, help="grating frames (30 Hz)")
    tuning.set_defaults(func=_run_tuning)
    rf = kinds.add_parser("rf", help="flashing ON/OFF dots on a grid -> RF centres vs readout positions")
    _common(rf)
    rf.add_argument("--grid", default=f"{EXPERIMENT_RF_GRID[0]}x{EXPERIMENT_RF_GRID[1]}",
                    help="dot grid ROWSxCOLS")
    rf.add_argument("--dot-frames", type=int_flag, default=EXPERIMENT_RF_DOT_FRAMES, help="frames per dot (30 Hz)")
    rf.set_defaults(func=_run_rf)
    domains = kinds.add_parser("domains", help="one stimulus of each out-of-distribution domain -> responses")
    _common(domains)
    domains.add_argument("--frames", type=int_flag, default=EXPERIMENT_DOMAIN_FRAMES, help="frames per domain (30 Hz)")
    domains.add_argument("--image", default=None, help="image file for the 'image' domain (default: 1/f noise)")
    domains.set_defaults(func=_run_domains)
    from berg_ray.experiments.mei_cli import add_mei_command
    from berg_ray.experiments.properties_cli import add_properties_command

    add_mei_command(kinds)
    add_properties_command(kinds)
    return parser


def _common(parser: argparse.ArgumentParser, burn_in_default: int = EXPERIMENT_BURN_IN_FRAMES,
            burn_in_help: str = "grey frames before every stimulus, dropped from the mean (model start-up)") -> None:
    """The options every experiment shares; ``burn_in_*``: the default and meaning of its --burn-in-frames."""
    add_release_options(parser)
    add_sessions_option(parser)
    add_output_option(parser, "a local directory or s3://bucket/prefix (stimuli, sweep, tables, figures under "
                      "<out>/<experiment>/; use S3 on a multi-node cluster)", "DIR")
    parser.add_argument("--burn-in-frames", type=int_flag, default=burn_in_default, help=burn_in_help)
    add_device_options(parser, ray=True)
    add_cluster_options(parser)
    add_verbosity_options(parser)


def _sweep_options(ns: argparse.Namespace) -> dict:
    """The SweepArgs fields of the device, precision, encoder pool and verbosity flags."""
    return dict(encoder_pool_args(ns), precision=ns.precision, verbose=ns.verbose)


def _cluster(ns: argparse.Namespace) -> contextlib.AbstractContextManager:
    """With --metrics-export-port, a local cluster with that metrics port for the whole experiment (its sweep runs
    on it); else nothing: the sweep starts, or joins, its own. Checked here, before any stimulus is generated."""
    from berg_ray.cluster.session import check_metrics_export_port, metrics_port_from

    port = metrics_port_from(ns.metrics_export_port)
    if port is None:
        return contextlib.nullcontext()
    check_metrics_export_port(port, ns.address)
    from berg_ray.cluster.local import ray_session

    return ray_session(ns.address, verbose=ns.verbose, metrics_export_port=port)


def preflight(ns: argparse.Namespace, kind: str, check_set: Callable[[], object] = lambda: None) -> list[str]:
    """The canonical scans to run, after checking, cheapest first: the options the experiment passes to the sweep,
    the stimulus set's parameters (``check_set``, which generates nothing), the --out location, then the scans
    against the release (listing those it holds). A bad one is refused with a plain message naming its flag
    before the cost is printed, stimuli are generated, Ray starts or anything is written."""
    from berg_ray.experiments.outputs import ExperimentDir
    from berg_ray.sweep.preflight import check_options, validate_args

    sessions = ns.sessions if ns.sessions.strip() == "all" else [s.strip() for s in ns.sessions.split(",")
                                                                  if s.strip()]
    options = dict(berg_dir=ns.berg_dir, input=ns.out, output=ns.out, sessions=sessions,
                   skip_frames=ns.burn_in_frames, address=ns.address, s3_endpoint_url=ns.s3_endpoint_url,
                   show_progress=not ns.quiet, **_sweep_options(ns))
    validate_args({**options, "sessions": "all"}, names=_FLAGS, flags=True)  # the scans: last, they read the release
    check_set()
    ExperimentDir(ns.out, kind, ns.s3_endpoint_url)  # an unsupported or malformed location (nothing is written)
    return check_options(options, names=_FLAGS, flags=True)[1]


_FLAGS = {"skip_frames": "--burn-in-frames", "input": "--out", "output": "--out", "show_progress": "--quiet"}


def _announce(name: str, stimulus_set, sessions) -> None:
    from berg_ray.config import FRAME_RATE_HZ

    scans = f"{len(sessions)} scan(s)"
    print(f"{name}: {len(stimulus_set.videos)} stimuli, {stimulus_set.n_frames} frames "
          f"({stimulus_set.n_frames / FRAME_RATE_HZ:.0f} s of video) x {scans}", flush=True)


def _run_tuning(ns: argparse.Namespace) -> int:
    from berg_ray.experiments.outputs import join_uri
    from berg_ray.experiments.stimulus_sets import check_tuning, tuning_set
    from berg_ray.experiments.tuning import run_tuning_experiment

    sessions = preflight(ns, "tuning", lambda: check_tuning(ns.directions, ns.repeats, ns.trial_frames))
    cluster = _cluster(ns)
    stimulus_set = tuning_set(ns.directions, ns.repeats, ns.trial_frames, ns.burn_in_frames)
    _announce("tuning", stimulus_set, sessions)
    with cluster:
        tables = run_tuning_experiment(stimulus_set, ns.berg_dir, ns.out, sessions, ns.address, not ns.quiet,
                                       ns.s3_endpoint_url, _sweep_options(ns))
    _print_summary(tables["summary"], join_uri(ns.out, "tuning"))
    return 0


def _run_rf(ns: argparse.Namespace) -> int:
    from berg_ray.experiments.outputs import join_uri
    from berg_ray.experiments.receptive_fields import run_rf_experiment
    from berg_ray.experiments.stimulus_sets import rf_set
    from berg_ray.stimuli.geometry import check_n_frames

    grid = _grid(ns.grid)
    sessions = preflight(ns, "rf", lambda: check_n_frames(ns.dot_frames, "dot_frames"))
    cluster = _cluster(ns)
    stimulus_set = rf_set(grid, ns.dot_frames, ns.burn_in_frames)
    _announce("rf", stimulus_set, sessions)
    with cluster:
        tables = run_rf_experiment(stimulus_set, grid, ns.berg_dir, ns.out, sessions, ns.address, not ns.quiet,
                                   ns.s3_endpoint_url, _sweep_options(ns))
    _print_summary(tables["summary"], join_uri(ns.out, "rf"))
    return 0


def _run_domains(ns: argparse.Namespace) -> int:
    from berg_ray.experiments.outputs import join_uri
    from berg_ray.experiments.domains import run_domains_experiment
    from berg_ray.experiments.stimulus_sets import domains_set
    from berg_ray.stimuli.geometry import check_n_frames

    sessions = preflight(ns, "domains", lambda: check_n_frames(ns.frames, "frames"))
    cluster = _cluster(ns)
    stimulus_set = domains_set(ns.frames, ns.burn_in_frames, ns.image)
    _announce("domains", stimulus_set, sessions)
    with cluster:
        tables = run_domains_experiment(stimulus_set, ns.berg_dir, ns.out, sessions, ns.address, not ns.quiet,
                                        ns.s3_endpoint_url, _sweep_options(ns))
    for scan, table in tables.items():
        means = table[[c for c in table.columns if c.startswith("mean_")]].mean()
        print(f"{scan}: population mean response " + ", ".join(f"{k[5:]} {v:.3f}" for k, v in means.items()))
    where = join_uri(ns.out, "domains")
    print(f"per-unit tables and figures: {where}/<scan>.parquet|.png; per-frame responses: {where}/sweep")
    return 0


def _print_summary(summary, where: str) -> None:
    """The summary table, then where the per-unit tables, figures and summary are."""
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"per-unit tables and figures: {where}/<scan>.parquet|.png; summary: {where}/summary.parquet")


def _grid(value: str) -> tuple[int, int]:
    numbers = [ascii_int(part) for part in value.lower().split("x")]
    if len(numbers) != 2 or not all(n is not None and n > 0 for n in numbers):
        raise BergRayError(f"--grid {value[:ECHO_CHARS]!r} is not ROWSxCOLS with positive integers in ASCII digits, "
                           "e.g. 6x10")
    return numbers[0], numbers[1]
