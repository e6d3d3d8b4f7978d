"""``berg-ray experiment properties``: per-unit readout properties and per-pair structure–function measures."""

from __future__ import annotations

import argparse

import numpy as np

from berg_ray.config import PROPERTIES_CLIP_FRAMES, PROPERTIES_CLIPS, PROPERTIES_MAX_PAIRS
from berg_ray.errors import InvalidArgumentError
from berg_ray.validation.numbers import int_flag


def add_properties_command(kinds: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``properties`` to the ``experiment`` subcommands."""
    from berg_ray.experiments.cli import _common

    parser = kinds.add_parser(
        "properties", help="per-unit readout features and positions; per-pair feature similarity, RF distance "
                           "and in-silico signal correlation",
        description="Per scan: a table of the chosen units' readout features (512 values, stream-major) and "
                    "readout positions (monitor pixels and degrees of visual angle), and a table of every pair of "
                    "them with feature cosine similarity, RF distance (deg) and in-silico signal correlation "
                    "(Pearson over the per-frame responses after the burn-in to a generated stimulus set or "
                    "--stimuli), plus a figure of each measure against the others.")
    _common(parser)
    parser.add_argument("--units", default="all",
                        help="which units of each scan: all, top:N (the N best predicted, highest cc_norm) or "
                             "readout indices such as 0,5,10-19")
    parser.add_argument("--max-pairs", type=int_flag, default=PROPERTIES_MAX_PAIRS,
                        help="refuse to run when the chosen units of all scans form more pairs than this")
    parser.add_argument("--stimuli", default=None, metavar="DIR",
                        help="a local directory of .npy uint8 (T, 144, 256) videos for the signal correlation "
                             "(default: a generated set of noise, grating, Gabor and dot clips)")
    parser.add_argument("--clips", type=int_flag, default=PROPERTIES_CLIPS,
                        help="clips of the generated set (without --stimuli)")
    parser.add_argument("--clip-frames", type=int_flag, default=PROPERTIES_CLIP_FRAMES,
                        help="frames per generated clip (30 Hz)")
    parser.add_argument("--seed", type=int_flag, default=0, help="seed of the generated set")
    parser.set_defaults(func=run_properties_command)
    return parser


def run_properties_command(ns: argparse.Namespace) -> int:
    from berg_ray.experiments.cli import _announce, _cluster, _sweep_options, preflight
    from berg_ray.experiments.outputs import ExperimentDir, join_uri
    from berg_ray.experiments.properties import KIND, check_pair_budget, chosen_units, run_properties_experiment
    from berg_ray.experiments.properties_stimuli import (check_properties_set, directory_files, directory_set,
                                                         properties_set)
    from berg_ray.experiments.unit_choice import parse_unit_choice

    choice = parse_unit_choice(ns.units)
    if ns.max_pairs < 1:
        raise InvalidArgumentError(f"--max-pairs {ns.max_pairs} must be a positive number of pairs")

    def check_set() -> None:
        if ns.stimuli is not None:
            directory_files(ns.stimuli)
        else:
            check_properties_set(ns.clips, ns.clip_frames)

    sessions = preflight(ns, KIND, check_set)
    release = ExperimentDir(ns.out, KIND, ns.s3_endpoint_url).local_release(ns.berg_dir)
    chosen = chosen_units(release, sessions, choice)
    total = check_pair_budget(chosen, ns.max_pairs, ns.units)
    cluster = _cluster(ns)
    stimulus_set = (directory_set(ns.stimuli, ns.burn_in_frames) if ns.stimuli is not None
                    else properties_set(ns.clips, ns.clip_frames, ns.burn_in_frames, ns.seed))
    _announce(KIND, stimulus_set, sessions)
    print(f"properties: {sum(len(ix) for ix in chosen.values())} units, {total:,} pairs", flush=True)
    with cluster:
        results = run_properties_experiment(stimulus_set, chosen, ns.berg_dir, ns.out, ns.address, not ns.quiet,
                                            ns.s3_endpoint_url, _sweep_options(ns))
    for scan, result in results.items():
        medians = {name: _median(result.pairs[name]) for name in ("feature_cosine", "rf_distance_deg",
                                                                   "signal_corr")}
        nan = int(result.pairs["signal_corr"].isna().sum())
        print(f"{scan}: {len(result.units)} units, {len(result.pairs):,} pairs; median feature cosine "
              f"{medians['feature_cosine']:.3f}, RF distance {medians['rf_distance_deg']:.1f} deg, signal "
              f"correlation {medians['signal_corr']:.3f}" + (f" ({nan} pairs NaN: constant responses)" if nan else ""))
    where = join_uri(ns.out, KIND)
    print(f"tables and figures: {where}/<scan>_units.parquet|_pairs.parquet|_pairs.png; per-frame responses: "
          f"{where}/sweep")
    return 0


def _median(values) -> float:
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    return float(np.median(finite)) if len(finite) else float("nan")
