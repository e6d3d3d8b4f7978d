"""The options several ``berg-ray`` subcommands share, each defined once, in one argument group per concern.

Concerns: release and S3 access (``--berg-dir``, ``--s3-endpoint-url``, ``--anonymous``), scans (``--sessions``),
device and precision (``--device``, ``--precision``), Ray cluster (``--address``, ``--metrics-export-port`` and the
encoder pool), output (``--out``), verbosity (``--quiet``, ``--verbose``) and video input (``--resize``). A
subcommand calls the ``add_*`` function of each concern it needs, so an option has the same name, help text and
metavar wherever it appears (tests/test_cli_options.py walks every parser to check it). Old spellings
(``--output``, ``--to``, ``--work-dir``, encode's ``--progress``) still work for a release, with a note.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from berg_ray.cli.parser import DeprecatedFlag, StoreWithAliases
from berg_ray.config import DEFAULT_PRECISION, DEFAULT_RESOURCE_WAIT_S, ECHO_CHARS, PRECISIONS
from berg_ray.validation.numbers import float_flag, int_flag

BERG_DIR_HELP = ("BERG directory holding the release (berg-ray download or demo-release writes one), or "
                 "s3://bucket/prefix of one")
S3_ENDPOINT_HELP = ("S3-compatible endpoint for s3:// locations, e.g. http://127.0.0.1:8333 (default: "
                    "AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, else AWS)")
ANONYMOUS_HELP = ("read the s3:// locations this command only reads (the release, inputs) without credentials, as "
                  "public buckets allow; outputs are always written with your credentials")
SESSIONS_HELP = "scans: comma-separated (session-8_scan-5,session-4_scan-7) or 'all' (every scan of the release)"
ONE_SESSION_HELP = "the scan whose units to use, e.g. session-8_scan-5 (--session is the same option)"
DEVICE_HELP = ("auto: GPUs when there are any (on a Ray cluster: GPU nodes up or startable by its autoscaler), "
               "else CPU; cpu; cuda: GPUs (Ray commands request them and wait for the autoscaler); cuda:N: GPU N "
               "of this machine (commands that compute in this process)")
PRECISION_HELP = ("numeric precision: float32 matches the reference; tf32 (CUDA, Ampere+) and bfloat16 are faster "
                  "on GPUs (a sweep records it with its output)")
ADDRESS_HELP = "Ray cluster to join, e.g. HOST:6379 (default: RAY_ADDRESS, else a local cluster for this command)"
METRICS_PORT_HELP = ("export Ray's and berg_ray's metrics in Prometheus format at http://127.0.0.1:PORT/metrics "
                     "while the local cluster this command starts runs (default: a port Ray picks; refused with "
                     "--address or RAY_ADDRESS: a joined cluster exports on its own nodes' metrics ports)")
QUIET_HELP = "no progress bars or run statistics (results and errors are still printed)"
VERBOSE_HELP = "also show Ray's own log lines on the console (default: they go to Ray's log files only)"
RESIZE_HELP = "resize frames of any other size to 144x256 (bilinear) instead of refusing them"
_DEVICE = re.compile(r"auto|cpu|cuda(:[0-9]{1,3})?")


def add_release_options(parser: argparse.ArgumentParser, anonymous: bool = False) -> argparse._ArgumentGroup:
    """``--berg-dir`` (required) and the S3 access options (``--anonymous`` when the command reads s3:// without
    credentials) in the group "release and S3 access"."""
    group = parser.add_argument_group("release and S3 access")
    group.add_argument("--berg-dir", required=True, metavar="DIR", help=BERG_DIR_HELP)
    _add_s3(group, anonymous)
    return group


def add_s3_options(parser: argparse.ArgumentParser, anonymous: bool = False) -> argparse._ArgumentGroup:
    """The S3 access options alone (commands without ``--berg-dir`` that read or write s3:// locations)."""
    group = parser.add_argument_group("S3 access")
    _add_s3(group, anonymous)
    return group


def _add_s3(group: argparse._ArgumentGroup, anonymous: bool) -> None:
    group.add_argument("--s3-endpoint-url", default=None, metavar="URL", help=S3_ENDPOINT_HELP)
    if anonymous:
        group.add_argument("--anonymous", action="store_true", help=ANONYMOUS_HELP)


def add_sessions_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup, default: str | None = "all",
                        default_text: str | None = None) -> argparse.Action:
    """``--sessions SCANS``: a comma-separated list of scans or 'all'; ``default_text`` describes a None default."""
    action = parser.add_argument("--sessions", default=default, metavar="SCANS", help=SESSIONS_HELP)
    action.default_text = default_text  # type: ignore[attr-defined]
    return action


def add_one_session_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> argparse.Action:
    """``--sessions SCAN`` (alias ``--session``), required: commands whose output is one scan's units."""
    return parser.add_argument("--sessions", "--session", dest="session", required=True, type=one_scan,
                               metavar="SCAN", help=ONE_SESSION_HELP)


def one_scan(text: str) -> str:
    """argparse ``type`` of a one-scan ``--sessions``: refuses a list or 'all' (the scan name is checked later)."""
    if "," in text or text.strip() == "all":
        raise argparse.ArgumentTypeError(f"{text[:ECHO_CHARS]!r} is not one scan: this command writes one scan's "
                                         "units, e.g. --sessions session-8_scan-5 (run it once per scan, or use "
                                         "berg-ray sweep for many)")
    return text


def add_device_options(parser: argparse.ArgumentParser, ray: bool, from_config: bool = False
                       ) -> argparse._ArgumentGroup:
    """``--device`` and ``--precision`` in the group "device and precision".

    Args:
        ray: the command runs its model in Ray actors or replicas, which Ray places: ``cuda:N`` is refused.
        from_config: defaults come from a config file (serve): None, shown as "the config's ..., else ...".
    """
    group = parser.add_argument_group("device and precision")
    device = group.add_argument("--device", type=cluster_device if ray else local_device,
                                default=None if from_config else "auto", metavar="DEVICE", help=DEVICE_HELP)
    precision = group.add_argument("--precision", choices=PRECISIONS, default=None if from_config else
                                   DEFAULT_PRECISION, help=PRECISION_HELP)
    if from_config:
        device.default_text = "the config's device, else auto"  # type: ignore[attr-defined]
        precision.default_text = f"the config's core.precision, else {DEFAULT_PRECISION}"  # type: ignore
    return group


def local_device(text: str) -> str:
    """argparse ``type`` of ``--device`` where the model runs in this process: auto, cpu, cuda or cuda:N."""
    value = text.strip().lower()
    if _DEVICE.fullmatch(value) is None:
        raise argparse.ArgumentTypeError(f"{text[:ECHO_CHARS]!r} is not a device: give auto, cpu, cuda or cuda:N")
    return value


def cluster_device(text: str) -> str:
    """argparse ``type`` of ``--device`` where Ray places the model: auto, cpu or cuda."""
    value = local_device(text)
    if value.startswith("cuda:"):
        raise argparse.ArgumentTypeError(f"{value!r} names one GPU of this machine, but Ray places this command's "
                                         "actors: give auto, cpu or cuda")
    return value


def add_cluster_options(parser: argparse.ArgumentParser, encoder_pool: bool = True, metrics: bool = True
                        ) -> argparse._ArgumentGroup:
    """``--address``, ``--metrics-export-port`` (``metrics``) and, for commands that run a sweep
    (``encoder_pool``), the encoder pool's size and resources, in the group "Ray cluster"."""
    group = parser.add_argument_group("Ray cluster")
    group.add_argument("--address", default=None, metavar="ADDRESS", help=ADDRESS_HELP)
    if metrics:
        group.add_argument("--metrics-export-port", default=None, metavar="PORT", help=METRICS_PORT_HELP)
    if not encoder_pool:
        return group
    group.add_argument("--num-workers", type=int_flag, default=None, metavar="N",
                       help="a fixed pool of this many encoder actors (default: GPU pools autoscale, see "
                            "--min-workers and --max-workers; CPU pools are sized from the cluster's CPUs)")
    group.add_argument("--min-workers", type=int_flag, default=None, metavar="N",
                       help="GPU pool: actors whose GPUs the sweep waits for before starting (default: 1)")
    group.add_argument("--max-workers", type=int_flag, default=None, metavar="N",
                       help="GPU pool: most actors as GPU nodes join (default: one per micro-batch)")
    group.add_argument("--resource-wait-s", type=float_flag, default=DEFAULT_RESOURCE_WAIT_S, metavar="SECONDS",
                       help="GPU pool: seconds to wait for the GPUs of --min-workers actors, then exit 2 with "
                            "nothing written")
    add_gpus_per_worker_option(group)
    group.add_argument("--accelerator-resource", default="GPU", metavar="RESOURCE",
                       help="Ray resource GPU actors request: GPU, or a custom resource your GPU node types declare")
    group.add_argument("--num-cpus-per-worker", type=float_flag, default=None, metavar="CPUS",
                       help="CPUs per actor (default: 1 on GPUs, else sized from the cluster)")
    return group


def add_gpus_per_worker_option(group: argparse._ArgumentGroup) -> None:
    """``--num-gpus-per-worker``: GPUs of each actor that runs on GPUs (--device decides whether they do)."""
    group.add_argument("--num-gpus-per-worker", type=float_flag, default=1.0, metavar="GPUS",
                       help="GPUs per GPU actor (--device decides whether actors run on GPUs)")


def encoder_pool_args(ns: argparse.Namespace) -> dict[str, Any]:
    """The SweepArgs fields of the device option and :func:`add_cluster_options`' encoder pool flags."""
    return dict(device=ns.device, num_workers=ns.num_workers, min_workers=ns.min_workers, max_workers=ns.max_workers,
                resource_wait_s=ns.resource_wait_s, num_gpus_per_worker=ns.num_gpus_per_worker,
                accelerator_resource=ns.accelerator_resource, num_cpus_per_worker=ns.num_cpus_per_worker)


def add_output_option(parser: argparse.ArgumentParser, help: str, metavar: str, required: bool = True,
                      default: Any = None, type: Any = None, deprecated: tuple[str, ...] = (),
                      default_text: str | None = None) -> argparse.Action:
    """``--out``, in the group "output"; ``help`` says what is written there (a file, a directory, ...).
    ``deprecated``: older names of the same option that still work for a release, with a note on stderr."""
    group = parser.add_argument_group("output")
    action = group.add_argument("--out", *deprecated, action=StoreWithAliases, deprecated_aliases=deprecated,
                                required=required, default=default, type=type, metavar=metavar, help=help)
    action.default_text = default_text  # type: ignore[attr-defined]
    return action


def add_verbosity_options(parser: argparse.ArgumentParser, quiet: bool = True, verbose: bool = True,
                          deprecated_progress: bool = False) -> argparse._ArgumentGroup:
    """``--quiet`` and, for commands that start or join Ray, ``--verbose``, in the group "verbosity".
    ``deprecated_progress``: also accept encode's old ``--progress`` (a progress bar is now the default)."""
    group = parser.add_argument_group("verbosity")
    if quiet:
        group.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    if verbose:
        group.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    if deprecated_progress:
        group.add_argument("--progress", action=DeprecatedFlag,
                           instead="a progress bar is shown on a terminal unless --quiet",
                           help="deprecated: a progress bar is shown by default on a terminal (--quiet hides it)")
    return group


def add_video_input_options(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """``--resize``, in the group "video input" (commands whose readers take videos of any frame size)."""
    group = parser.add_argument_group("video input")
    group.add_argument("--resize", action="store_true", help=RESIZE_HELP)
    return group


def release_dir(ns: argparse.Namespace) -> str:
    """The local directory of ``--berg-dir``: as given, or an s3:// release through this node's verified cache,
    reached with ``--s3-endpoint-url`` (and ``--anonymous`` where the command has it)."""
    from berg_ray.download import resolve_berg_dir
    from berg_ray.storage.s3 import s3_options_for

    s3 = s3_options_for(ns.berg_dir, ns.s3_endpoint_url, getattr(ns, "anonymous", False))
    return str(resolve_berg_dir(ns.berg_dir, s3))
