"""``build_app``: the Serve application graph from one ServeArgs (``import_path: berg_ray.serve.app:build_app``).

Topology (design.md): ``Ingress`` (HTTP + handle; autoscaled, CPU) -> ``CoreServer`` (fixed or autoscaled replicas,
one GPU each where the cluster has GPUs; each batches the videos routed to it, of all clients and scans) ->
``ReadoutServer`` (readout heads; one deployment multiplexed by scan id, autoscaled, CPU). Every option comes from
ServeArgs; nothing is started here, so tests can inspect the graph without a cluster.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import ray
import torch
from ray import serve
from ray.serve import Application

from berg_ray.checkpoint.release import available_scans
from berg_ray.runtime import threads
from berg_ray.config import ReplicaArgs, ScaledDeploymentArgs, ServeArgs
from berg_ray.download import resolve_berg_dir
from berg_ray.storage.s3 import s3_options_for
from berg_ray.errors import BergRayError, ReleaseFormatError, ScanNotAvailableError
from berg_ray.serve.core import CoreServer
from berg_ray.serve.heads import ReadoutServer
from berg_ray.serve.ingress import Ingress
from berg_ray.serve.protocol import token_digest


def build_app(args: ServeArgs | dict[str, Any]) -> Application:
    """Build the service's application graph.

    Args:
        args: ServeArgs, or its dict form (the ``args:`` of a Serve config YAML); validated here, once.
    Returns:
        The unstarted Application whose ingress is ``Ingress`` (route prefix chosen at ``serve.run``).
    Raises:
        ScanNotAvailableError: a requested scan has no weights in ``berg_dir``.
        BergRayError: ``token_env`` names an unset or empty environment variable.
    """
    args = ServeArgs.model_validate(args)
    return build_app_with_digest(args, read_token_digest(args.token_env))


def build_app_with_digest(args: ServeArgs, digest: str | None) -> Application:
    """:func:`build_app` with the bearer token's digest already read (None: no authentication); ``berg-ray serve``
    reads the token before Ray starts (:func:`take_token_digest`)."""
    scan_ids = resolve_scan_ids(args)
    num_gpus, _ = core_gpus(args)
    placement = heads_placement(args.heads, num_gpus)
    heads: Any = None  # in_core: the core replica runs the readout itself
    if placement == "multiplexed":
        heads = _deployment(ReadoutServer, "ReadoutServer", args.readout).bind(args.berg_dir, args.s3_endpoint_url)
    elif placement == "per_scan":
        heads = {sid: _deployment(ReadoutServer, f"ReadoutServer_{sid}", args.readout).bind(
            args.berg_dir, args.s3_endpoint_url) for sid in scan_ids}
    device = args.device if num_gpus > 0 or args.device != "auto" else "cpu"
    core = _deployment(CoreServer, "CoreServer", args.core, num_gpus).options(
        user_config=args.batching.model_dump()).bind(args.berg_dir, scan_ids, device, args.core, heads,
                                                     args.s3_endpoint_url)
    return _deployment(Ingress, "Ingress", args.ingress).bind(args, scan_ids, digest, core)


def heads_placement(heads: str, core_gpus: float) -> str:
    """Resolve ``ServeArgs.heads``: 'auto' runs the readout in the core replica when it has a GPU (a CPU head costs
    ~50x the core's time per frame there, and features are 20x the bytes of responses), else in a multiplexed
    CPU deployment (on CPU the core is the slow part and heads scale out)."""
    if heads == "auto":
        return "in_core" if core_gpus > 0 else "multiplexed"
    return heads


def resolve_scan_ids(args: ServeArgs) -> list[str]:
    """The canonical ids of the scans to serve: ``sessions``, or every scan with weights in ``berg_dir``.

    Raises:
        ReleaseFormatError: ``berg_dir`` does not exist (the message names the absolute path it resolved to).
        ScanNotAvailableError: a requested scan has no weights there.
    """
    local = resolve_berg_dir(args.berg_dir, s3_options_for(args.berg_dir, args.s3_endpoint_url))  # s3://: the cache
    args = args.model_copy(update={"berg_dir": str(local)})
    root = Path(args.berg_dir)
    if not root.is_dir():
        raise ReleaseFormatError(f"berg_dir {args.berg_dir!r} does not exist (resolved to {root.resolve()}, from "
                                 f"the working directory {Path.cwd()}); pass the directory holding the release "
                                 "(`berg-ray demo-release --out DIR` writes a generated one)")
    present = [str(s) for s in available_scans(args.berg_dir)]
    wanted = present if args.sessions == "all" else args.sessions
    missing = [sid for sid in wanted if sid not in present]
    if missing or not wanted:
        raise ScanNotAvailableError(f"scans {missing or wanted} have no weights in {args.berg_dir}; "
                                    f"available: {present}")
    return list(wanted)


def _deployment(cls: type, name: str, options: ScaledDeploymentArgs, num_gpus: float = 0) -> serve.Deployment:
    """``cls`` as a deployment of a fixed replica count (equal bounds) or autoscaled on ongoing requests, each
    replica reserving ``options.num_cpus`` CPUs and ``num_gpus`` GPUs."""
    if options.min_replicas == options.max_replicas:
        scaling: dict[str, Any] = {"num_replicas": options.min_replicas}
    else:
        scaling = {"autoscaling_config": {"min_replicas": options.min_replicas, "max_replicas": options.max_replicas,
                                          "target_ongoing_requests": options.target_ongoing_requests}}
    return serve.deployment(cls).options(name=name, **scaling, **_replica_options(options, num_gpus))


def _replica_options(options: ReplicaArgs, num_gpus: float) -> dict[str, Any]:
    return {"max_ongoing_requests": options.max_ongoing_requests,
            "max_queued_requests": options.max_queued_requests,
            "ray_actor_options": {"num_cpus": options.num_cpus, "num_gpus": num_gpus,
                                  "runtime_env": threads.runtime_env()}}  # OpenMP wait policy: runtime.threads


def core_gpus(args: ServeArgs) -> tuple[float, str]:
    """GPUs per core replica and why: ``core.num_gpus`` if set; else 1 for ``device`` cuda/cuda:N and 0 for cpu;
    for ``auto`` 1 when the cluster has a GPU now or its autoscaler can start GPU nodes (berg_ray.cluster.accelerators:
    the pending replica's GPU request is what makes the autoscaler start one), else 0; without a cluster, 1 when
    this machine has a GPU."""
    if args.core.num_gpus is not None:
        return args.core.num_gpus, f"core.num_gpus = {args.core.num_gpus:g}"
    if args.device.startswith("cuda"):
        return 1.0, f"--device {args.device}"
    if args.device == "cpu":
        return 0.0, "--device cpu"
    if not ray.is_initialized():
        has_gpu = torch.cuda.is_available()
        return (1.0 if has_gpu else 0.0), f"--device auto: this machine has {'a' if has_gpu else 'no'} GPU"
    from berg_ray.cluster.accelerators import choose_device, cluster_capacity

    choice = choose_device("auto", cluster_capacity("GPU"))
    return (1.0 if choice.on_accelerator else 0.0), choice.reason


def read_token_digest(token_env: str | None) -> str | None:
    """SHA-256 of the token in the environment variable ``token_env`` (None: no authentication); the replicas get
    only the digest.

    Raises:
        BergRayError: ``token_env`` names an unset or empty environment variable.
    """
    if token_env is None:
        return None
    token = os.environ.get(token_env, "")
    if not token:
        raise BergRayError(f"token_env names {token_env!r}, but that environment variable is unset or empty; "
                           "export the token there or drop token_env")
    return token_digest(token)


def take_token_digest(token_env: str | None) -> str | None:
    """:func:`read_token_digest`, then remove the variable from this process's environment.

    Call it before Ray starts a local cluster: ``ray.init`` starts the GCS and raylet as children of this process
    and the raylet starts every worker, so all of them inherit this environment, and any task could read a token
    still in it.
    """
    digest = read_token_digest(token_env)
    if token_env is not None:
        os.environ.pop(token_env, None)
    return digest
