"""``berg-ray evaluate``: flags -> EvaluationArgs -> berg_ray.experiments.evaluate; table, figure and a summary."""

from __future__ import annotations

import argparse
from pathlib import Path

from berg_ray.config import ACCURACY_BURN_IN_FRAMES, DEFAULT_CHUNK_FRAMES, DEFAULT_PRECISION, PRECISIONS
from berg_ray.errors import BergRayError
from berg_ray.numbers import int_flag


def add_evaluate_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``evaluate`` subcommand."""
    parser = subparsers.add_parser(
        "evaluate", help="prediction accuracy against recorded responses: cc_abs, cc_max, cc_norm per unit",
        description="Predict every recorded video (one .npz per video: 'stimulus' uint8 [T,144,256], 'responses' "
                    "[R,T,U] recorded trials in readout order, optional 'perspectives' / 'modulations' [R,T,2] per "
                    "trial, then each trial is predicted with its own behaviour), score the predictions per unit "
                    "(cc_abs, cc_max, cc_norm as the reference computes them) and write a Parquet table with the "
                    "released scores beside them, plus a PNG figure. Runs in this process on --device, or with "
                    "--workers N on N Ray actors (a local Ray cluster, or --address / RAY_ADDRESS).")
    parser.add_argument("--berg-dir", required=True, help="BERG directory of the release, or s3://bucket/prefix")
    parser.add_argument("--session", required=True, help="train session whose units were recorded, e.g. "
                                                         "session-8_scan-5")
    parser.add_argument("--recordings", required=True, type=Path,
                        help="a .npz file of one video, or a directory of them (taken in order of file name)")
    parser.add_argument("--out", required=True, type=Path,
                        help="Parquet table to write (one row per unit); the figure goes beside it as .png")
    parser.add_argument("--burn-in-frames", type=int_flag, default=ACCURACY_BURN_IN_FRAMES,
                        help="frames dropped from the start of every video before scoring (the reference's 10)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    parser.add_argument("--precision", choices=PRECISIONS, default=DEFAULT_PRECISION,
                        help="numeric precision: float32 matches the reference")
    parser.add_argument("--chunk-frames", type=int_flag, default=DEFAULT_CHUNK_FRAMES,
                        help="frames per chunk; memory grows with it and with the trials of a video, results do not "
                             "depend on it")
    parser.add_argument("--workers", type=int_flag, default=0,
                        help="0: predict in this process; N: on N Ray actors, one model each (videos spread over them)")
    parser.add_argument("--num-gpus-per-worker", type=float, default=0.0,
                        help="with --workers: GPUs per actor (0: CPU actors; 1: each actor on its own GPU)")
    parser.add_argument("--address", default=None,
                        help="with --workers: Ray cluster to join (default: RAY_ADDRESS, else a local cluster)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_evaluate_command)
    return parser


def run_evaluate_command(ns: argparse.Namespace) -> int:
    """Handler of ``berg-ray evaluate``: writes the table and the figure, prints a summary per area."""
    from berg_ray.experiments.evaluate import EvaluationArgs, evaluate, write_table
    from berg_ray.experiments.figures import accuracy_figure
    from berg_ray.experiments.recordings import recording_files
    from berg_ray.paths import check_output_file
    from berg_ray.threads import set_torch_threads

    out, figure = ns.out, ns.out.with_suffix(".png")
    if figure == out:
        raise BergRayError(f"--out {out} ends in .png, the figure's name; give the table a .parquet name")
    check_output_file(out, "--out")
    check_output_file(figure, "--out's figure")
    files = recording_files(ns.recordings)
    set_torch_threads()
    args = EvaluationArgs(berg_dir=ns.berg_dir, session=ns.session, burn_in_frames=ns.burn_in_frames,
                          device=ns.device, precision=ns.precision, chunk_frames=ns.chunk_frames,
                          show_progress=not ns.quiet)
    if ns.workers == 0 and (ns.address or ns.num_gpus_per_worker):
        raise BergRayError("--address and --num-gpus-per-worker apply to Ray actors: add --workers N (N >= 1)")
    if not 0 <= ns.num_gpus_per_worker <= 64:
        raise BergRayError(f"--num-gpus-per-worker {ns.num_gpus_per_worker} is out of range; give 0 (CPU) to 64")
    table, info = evaluate(args, files, workers=ns.workers, address=ns.address,
                           gpus_per_worker=ns.num_gpus_per_worker)
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
