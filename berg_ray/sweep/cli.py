"""``berg-ray sweep``: command-line flags -> :class:`~berg_ray.config.SweepArgs` -> :func:`berg_ray.sweep.run`."""

from __future__ import annotations

import argparse

from berg_ray.cli.options import (add_cluster_options, add_device_options, add_output_option, add_release_options,
                                  add_sessions_option, add_verbosity_options, add_video_input_options,
                                  encoder_pool_args)
from berg_ray.config import DEFAULT_SWEEP_BATCH_SIZE, DEFAULT_SWEEP_CHUNK_FRAMES, DEFAULT_SWEEP_MAX_FRAMES, SweepArgs
from berg_ray.validation.numbers import int_flag


def add_sweep_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``sweep`` subcommand; its handler returns 0, or 1 if any input failed."""
    parser = subparsers.add_parser(
        "sweep", help="encode a corpus of videos (local or s3://) with Ray Data and write Parquet",
        description="Stream every .npy/.npz/.mp4/.avi/.mov/.mkv under --input through the model for every scan "
                    "of --sessions and write one Parquet row per (stimulus, scan) under --out. Re-running "
                    "the same command skips work already written. Exit code 1 if any input failed (see "
                    "OUT/_errors/errors.parquet).")
    add_release_options(parser, anonymous=True)
    parser.add_argument("--input", required=True, help="local directory or s3://bucket/prefix/ of videos")
    parser.add_argument("--follow-symlinks", action="store_true",
                        help="read through symbolic links under a local --input that lead outside it (default: off, "
                             "each such link is listed as an error and not read; dangling links are always errors)")
    add_video_input_options(parser)
    add_output_option(parser, "local directory or s3://bucket/prefix/ for Parquet", "DIR", deprecated=("--output",))
    add_sessions_option(parser)
    parser.add_argument("--batch-size", type=int_flag, default=DEFAULT_SWEEP_BATCH_SIZE, help="stimuli per micro-batch")
    parser.add_argument("--chunk-frames", type=int_flag, default=DEFAULT_SWEEP_CHUNK_FRAMES,
                        help="frames per forward call; memory grows with batch x chunk (~2 MB per video frame on CPU); "
                             "results do not depend on it")
    parser.add_argument("--reduce", choices=("none", "mean"), default="none",
                        help="'none': responses per frame; 'mean': mean over frames after --skip-frames")
    parser.add_argument("--skip-frames", type=int_flag, default=0, help="leading frames dropped from every response")
    parser.add_argument("--max-frames", type=int_flag, default=DEFAULT_SWEEP_MAX_FRAMES,
                        help=f"most frames at 30 Hz per stimulus ({DEFAULT_SWEEP_MAX_FRAMES} = 10 min); longer inputs "
                             "are listed as errors")
    add_device_options(parser, ray=True)
    add_cluster_options(parser)
    add_verbosity_options(parser)
    parser.set_defaults(func=run_sweep_command)
    return parser


def sweep_args_from_cli(ns: argparse.Namespace) -> SweepArgs:
    """The typed options of parsed flags (raises BergRayError for invalid values, naming the flags); reads nothing."""
    from berg_ray.sweep.preflight import validate_args

    return validate_args(_options(ns), names=_FLAGS, flags=True)


_FLAGS = {"show_progress": "--quiet", "output": "--out"}  # the other fields are named as their flags


def _options(ns: argparse.Namespace) -> dict:
    from berg_ray.cluster.session import metrics_port_from

    sessions = ns.sessions if ns.sessions.strip() == "all" else [s for s in ns.sessions.split(",") if s.strip()]
    return dict(
        berg_dir=ns.berg_dir, input=ns.input, follow_symlinks=ns.follow_symlinks, output=ns.out,
        sessions=sessions, batch_size=ns.batch_size,
        chunk_frames=ns.chunk_frames, reduce=ns.reduce, skip_frames=ns.skip_frames, precision=ns.precision, resize=ns.resize,
        max_frames=ns.max_frames,
        s3_endpoint_url=ns.s3_endpoint_url, anonymous=ns.anonymous, address=ns.address, **encoder_pool_args(ns),
        metrics_export_port=metrics_port_from(ns.metrics_export_port), show_progress=not ns.quiet,
        verbose=ns.verbose)


def run_sweep_command(ns: argparse.Namespace) -> int:
    """Handler of ``berg-ray sweep``: pre-flights the flags (a wrong scan is refused with the scans the release
    holds), then prints the summary (unless --quiet); 0 if every input was encoded, 1 if some failed."""
    from berg_ray.sweep.preflight import check_options
    from berg_ray.sweep.runner import run

    result = run(check_options(_options(ns), names=_FLAGS, flags=True)[0])
    if not ns.quiet:
        print(result.summary(), flush=True)
    return 0 if result.ok else 1
