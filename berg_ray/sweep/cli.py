"""``berg-ray sweep``: command-line flags -> :class:`~berg_ray.config.SweepArgs` -> :func:`berg_ray.sweep.run`."""

from __future__ import annotations

import argparse

from berg_ray.config import (DEFAULT_PRECISION, DEFAULT_RESOURCE_WAIT_S, DEFAULT_SWEEP_BATCH_SIZE,
                             DEFAULT_SWEEP_CHUNK_FRAMES, DEFAULT_SWEEP_MAX_FRAMES, PRECISIONS, SWEEP_DEVICES, SweepArgs)
from berg_ray.numbers import float_flag, int_flag


def add_sweep_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``sweep`` subcommand; its handler returns 0, or 1 if any input failed."""
    parser = subparsers.add_parser(
        "sweep", help="encode a corpus of videos (local or s3://) with Ray Data and write Parquet",
        description="Stream every .npy/.npz/.mp4/.avi/.mov/.mkv under --input through the model for every scan "
                    "of --sessions and write one Parquet row per (stimulus, scan) under --output. Re-running "
                    "the same command skips work already written. Exit code 1 if any input failed (see "
                    "OUTPUT/_errors/errors.parquet).")
    parser.add_argument("--berg-dir", required=True, help="BERG directory of the release, or s3://bucket/prefix")
    parser.add_argument("--input", required=True, help="local directory or s3://bucket/prefix/ of videos")
    parser.add_argument("--follow-symlinks", action="store_true",
                        help="read through symbolic links under a local --input that lead outside it (default: off, "
                             "each such link is listed as an error and not read; dangling links are always errors)")
    parser.add_argument("--output", required=True, help="local directory or s3://bucket/prefix/ for Parquet")
    parser.add_argument("--sessions", default="all",
                        help="comma-separated scans (session-8_scan-5,session-4_scan-7) or 'all'")
    parser.add_argument("--batch-size", type=int_flag, default=DEFAULT_SWEEP_BATCH_SIZE, help="stimuli per micro-batch")
    parser.add_argument("--chunk-frames", type=int_flag, default=DEFAULT_SWEEP_CHUNK_FRAMES,
                        help="frames per forward call; memory grows with batch x chunk (~2 MB per video frame on CPU); "
                             "results do not depend on it")
    parser.add_argument("--reduce", choices=("none", "mean"), default="none",
                        help="'none': responses per frame; 'mean': mean over frames after --skip-frames")
    parser.add_argument("--skip-frames", type=int_flag, default=0, help="leading frames dropped from every response")
    parser.add_argument("--precision", choices=PRECISIONS, default=DEFAULT_PRECISION,
                        help="numeric precision: float32 matches the reference; tf32 (CUDA, Ampere+) and bfloat16 are faster on GPUs; part of the output's content")
    parser.add_argument("--resize", action="store_true", help="resize other frame sizes to 144x256 (bilinear)")
    parser.add_argument("--max-frames", type=int_flag, default=DEFAULT_SWEEP_MAX_FRAMES,
                        help=f"most frames at 30 Hz per stimulus ({DEFAULT_SWEEP_MAX_FRAMES} = 10 min); longer inputs "
                             "are listed as errors")
    parser.add_argument("--s3-endpoint-url", default=None, help="S3-compatible endpoint (default: AWS_ENDPOINT_URL)")
    parser.add_argument("--anonymous", action="store_true", help="read a public input bucket without credentials")
    parser.add_argument("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS or local)")
    add_encoder_pool_options(parser)
    parser.add_argument("--metrics-export-port", default=None, metavar="PORT",
                        help="export Ray's and berg_ray's metrics at http://127.0.0.1:PORT/metrics while the sweep's "
                             "local cluster runs (default: a port Ray picks; refused with --address: a joined cluster exports on "
                             "its own nodes' metrics ports)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or summary")
    parser.add_argument("--verbose", action="store_true", help="also show Ray's own logs (default: in Ray's log "
                                                               "files)")
    parser.set_defaults(func=run_sweep_command)
    return parser


def add_encoder_pool_options(parser: argparse.ArgumentParser) -> None:
    """Where the encoder actors run and how many (every command that runs a sweep: sweep, experiment ...)."""
    group = parser.add_argument_group("encoder actors (device, pool size, autoscaling)")
    group.add_argument("--device", choices=SWEEP_DEVICES, default="auto",
                       help="'cuda': actors request GPUs whether or not a GPU node is up (the autoscaler starts "
                            "them; the sweep waits); 'cpu': CPU actors; 'auto': GPUs when the cluster has them now "
                            "or its autoscaler can start them, else CPU (the first line printed says which and why) "
                            "(default: %(default)s)")
    group.add_argument("--num-workers", type=int_flag, default=None,
                       help="a fixed pool of this many actors (default: GPU pools autoscale, see --min-workers and "
                            "--max-workers; CPU pools are sized from the cluster's CPUs)")
    group.add_argument("--min-workers", type=int_flag, default=None,
                       help="GPU pool: actors whose GPUs the sweep waits for before starting (default: 1)")
    group.add_argument("--max-workers", type=int_flag, default=None,
                       help="GPU pool: most actors as GPU nodes join (default: one per micro-batch)")
    group.add_argument("--resource-wait-s", type=float_flag, default=DEFAULT_RESOURCE_WAIT_S,
                       help="GPU pool: seconds to wait for the GPUs of --min-workers actors, then exit 2 with "
                            "nothing written (default: %(default)s)")
    group.add_argument("--num-gpus-per-worker", type=float_flag, default=1.0,
                       help="GPUs per GPU actor (default: %(default)s)")
    group.add_argument("--accelerator-resource", default="GPU",
                       help="Ray resource GPU actors request: GPU, or a custom resource your GPU node types declare "
                            "(default: %(default)s)")
    group.add_argument("--num-cpus-per-worker", type=float_flag, default=None,
                       help="CPUs per actor (default: 1 on GPUs, else sized from the cluster)")


def encoder_pool_args(ns: argparse.Namespace) -> dict:
    """The SweepArgs fields of :func:`add_encoder_pool_options`' flags."""
    return dict(device=ns.device, num_workers=ns.num_workers, min_workers=ns.min_workers, max_workers=ns.max_workers,
                resource_wait_s=ns.resource_wait_s, num_gpus_per_worker=ns.num_gpus_per_worker,
                accelerator_resource=ns.accelerator_resource, num_cpus_per_worker=ns.num_cpus_per_worker)


def sweep_args_from_cli(ns: argparse.Namespace) -> SweepArgs:
    """The typed options of parsed flags (raises BergRayError for invalid values, naming the flags); reads nothing."""
    from berg_ray.sweep.preflight import validate_args

    return validate_args(_options(ns), names=_FLAGS, flags=True)


_FLAGS = {"show_progress": "--quiet"}  # the other fields are named as their flags


def _options(ns: argparse.Namespace) -> dict:
    from berg_ray.ray_setup import metrics_port_from

    sessions = ns.sessions if ns.sessions.strip() == "all" else [s for s in ns.sessions.split(",") if s.strip()]
    return dict(
        berg_dir=ns.berg_dir, input=ns.input, follow_symlinks=ns.follow_symlinks, output=ns.output,
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
