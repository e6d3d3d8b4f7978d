"""``berg-ray evaluate``: flags -> EvaluationArgs -> berg_ray.experiments.evaluate; table, figure and a summary."""

from __future__ import annotations

import argparse
from pathlib import Path

from berg_ray.cli.options import (add_cluster_options, add_device_options, add_gpus_per_worker_option,
                                  add_one_session_option, add_output_option, add_release_options,
                                  add_verbosity_options)
from berg_ray.config import ACCURACY_BURN_IN_FRAMES, DEFAULT_CHUNK_FRAMES
from berg_ray.errors import BergRayError
from berg_ray.validation.numbers import int_flag


def add_evaluate_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``evaluate`` subcommand."""
    parser = subparsers.add_parser(
        "evaluate", help="prediction accuracy against recorded responses: cc_abs, cc_max, cc_norm per unit",
        description="Predict every recorded video (one .npz per video: 'stimulus' uint8 [T,144,256], 'responses' "
                    "[R,T,U] recorded trials in readout order, optional 'perspectives' / 'modulations' [R,T,2] per "
                    "trial, then each trial is predicted with its own behaviour), score the predictions per unit "
                    "(cc_abs, cc_max, cc_norm as the reference computes them) and write a Parquet table with the "
                    "released scores beside them, plus a PNG figure. Runs in this process on --device, or with "
                    "--workers N on N Ray actors (a local Ray cluster, or --address / RAY_ADDRESS; --device picks "
                    "CPU or GPU actors).")
    add_release_options(parser, anonymous=True)
    add_one_session_option(parser)
    parser.add_argument("--recordings", required=True, type=Path,
                        help="a .npz file of one video, or a directory of them (taken in order of file name)")
    add_output_option(parser, "Parquet table to write (one row per unit); the figure goes beside it as .png", "FILE",
                      type=Path)
    parser.add_argument("--burn-in-frames", type=int_flag, default=ACCURACY_BURN_IN_FRAMES,
                        help="frames dropped from the start of every video before scoring (the reference's 10)")
    add_device_options(parser, ray=False)
    parser.add_argument("--chunk-frames", type=int_flag, default=DEFAULT_CHUNK_FRAMES,
                        help="frames per chunk; memory grows with it and with the trials of a video, results do not "
                             "depend on it")
    cluster = add_cluster_options(parser, encoder_pool=False, metrics=False)
    cluster.add_argument("--workers", type=int_flag, default=0, metavar="N",
                         help="0: predict in this process; N: on N Ray actors, one model each (videos spread over "
                              "them)")
    add_gpus_per_worker_option(cluster)
    add_verbosity_options(parser)
    parser.set_defaults(func=run_evaluate_command)
    return parser


def run_evaluate_command(ns: argparse.Namespace) -> int:
    """Handler of ``berg-ray evaluate``: writes the table and the figure, prints a summary per area."""
    from berg_ray.experiments.evaluate import EvaluationArgs, evaluate, write_table
    from berg_ray.experiments.figures import accuracy_figure
    from berg_ray.experiments.recordings import recording_files
    from berg_ray.storage.paths import check_output_file
    from berg_ray.runtime.threads import set_torch_threads

    out, figure = ns.out, ns.out.with_suffix(".png")
    if figure == out:
        raise BergRayError(f"--out {out} ends in .png, the figure's name; give the table a .parquet name")
    check_output_file(out, "--out")
    check_output_file(figure, "--out's figure")
    files = recording_files(ns.recordings)
    set_torch_threads()
    args = EvaluationArgs(berg_dir=ns.berg_dir, session=ns.session, burn_in_frames=ns.burn_in_frames,
                          device=ns.device, precision=ns.precision, chunk_frames=ns.chunk_frames,
                          show_progress=not ns.quiet, s3_endpoint_url=ns.s3_endpoint_url, anonymous=ns.anonymous)
    if ns.workers == 0 and ns.address:
        raise BergRayError("--address applies to Ray actors: add --workers N (N >= 1)")
    if ns.workers and ns.device.startswith("cuda:"):
        raise BergRayError(f"--device {ns.device} names one GPU of this machine, but Ray places the --workers "
                           "actors: give auto, cpu or cuda")
    if not 0 < ns.num_gpus_per_worker <= 64:
        raise BergRayError(f"--num-gpus-per-worker {ns.num_gpus_per_worker} is out of range; give more than 0, at "
                           "most 64")
    table, info = evaluate(args, files, workers=ns.workers, address=ns.address,
                           gpus_per_worker=ns.num_gpus_per_worker, verbose=ns.verbose)
    write_table(out, table, info)
    title = (f"{info['train_session']}: prediction accuracy on {info['videos']} recorded videos "
             f"({_behaviour_note(info)}; {info['weights']})")
    accuracy_figure(table, title, figure)
    _print_summary(table, info)
    print(f"wrote {out} ({len(table)} units) and {figure}")
    return 0


def _behaviour_note(info: dict) -> str:
    with_behaviour, videos = info["videos_with_behaviour"], info["videos"]
    if with_behaviour == videos:
        return "each trial with its recorded behaviour"
    if with_behaviour == 0:
        return "without behaviour"
    return f"{with_behaviour} of {videos} videos with recorded behaviour"


def _print_summary(table, info: dict) -> None:
    """Median scores per area (and over all units), predicted and released."""
    columns = ["cc_abs", "cc_max", "cc_norm", "released_cc_norm"]
    summary = table.groupby(table["area"].replace("", "none"))[columns].median()
    summary.loc["all"] = table[columns].median()
    summary.insert(0, "units", [*table["area"].replace("", "none").value_counts().reindex(summary.index[:-1]),
                                len(table)])
    print(f"median per area ({_behaviour_note(info)}; the released scores used recorded behaviour):")
    print(summary.to_string(float_format=lambda v: f"{v:.3f}"))
