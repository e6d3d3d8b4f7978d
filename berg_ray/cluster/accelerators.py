"""Where accelerator work can run on a Ray cluster: on the nodes up now, or on nodes its autoscaler can start.

A cluster at rest has its GPU node groups scaled to zero: no GPU is alive, yet the autoscaler starts GPU nodes as
soon as something asks for GPUs. So "does the cluster have GPUs?" is read from three places, in order:

1. the alive nodes (``ray.nodes()``): the resource is up now;
2. Ray's cluster config (``ray._private.state.state.get_max_resources_from_cluster_config``, the node groups an
   autoscaler integration reports to the GCS; Ray Data reads the same);
3. the autoscaler's own config file on the head node: the ``--autoscaling-config`` of the monitor process of this
   cluster (the cluster launcher's ``~/ray_bootstrap_config.yaml``), read by a zero-CPU task pinned to the head,
   summing ``max_workers x resources`` over its node types.

A KubeRay autoscaler runs in its own container and its config is the RayCluster resource: where neither 2 nor 3
is visible, ``--device cuda`` (or ``device: cuda`` in a Serve config) asks for GPUs regardless.

:func:`choose_device` turns a requested device (``auto``, ``cpu``, ``cuda``) and a :class:`Capacity` into a
decision with its reason, the first line a sweep prints. Pure functions here; the Ray reads are in
:func:`cluster_capacity`.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from berg_ray.errors import BergRayError

HEAD_RESOURCE = "node:__internal_head__"  # the resource only Ray's head node offers
MONITOR_SCRIPTS = ("autoscaler/_private/monitor.py", "autoscaler/v2/monitor.py")


@dataclass(frozen=True)
class Capacity:
    """How much of ``resource`` the cluster has now and how much its autoscaler can add.

    ``startable``: most units the autoscaler can start (``math.inf`` for an unbounded node type), None when no
    autoscaler config was found; ``source`` says where ``startable`` was read.
    """

    resource: str
    now: float
    startable: float | None
    source: str

    def describe(self) -> str:
        if self.now > 0:
            return f"the cluster has {_count(self.now)} {self.resource} now"
        if self.startable:
            most = "unbounded" if math.isinf(self.startable) else f"up to {_count(self.startable)}"
            return f"no {self.resource} node is up, but its autoscaler can start {most} {self.resource} ({self.source})"
        return f"the cluster has no {self.resource} and {self.source}"


@dataclass(frozen=True)
class DeviceChoice:
    """Where encoder work runs: ``device`` ``cpu`` or ``cuda`` (on ``resource``), and why."""

    device: str
    resource: str
    reason: str

    @property
    def on_accelerator(self) -> bool:
        return self.device == "cuda"


def choose_device(requested: str, capacity: Capacity) -> DeviceChoice:
    """The device of a cluster's encoders: ``cpu`` and ``cuda`` as requested; ``auto`` picks ``cuda`` when the
    resource is up now or the autoscaler can start it, else ``cpu``. Never a silent fall-back: the reason says
    which and why.

    Raises:
        BergRayError: ``cuda`` where none is up and the autoscaler's config offers none (waiting would be futile).
    """
    if requested == "cpu":
        return DeviceChoice("cpu", capacity.resource, "--device cpu")
    if requested == "cuda":
        if capacity.now <= 0 and capacity.startable == 0:
            raise BergRayError(f"--device cuda, but {capacity.describe()}: no {capacity.resource} can ever come; add "
                               f"a {capacity.resource} node type to the autoscaler config, or use --device cpu")
        return DeviceChoice("cuda", capacity.resource, f"--device cuda; {capacity.describe()}")
    if requested != "auto":
        raise ValueError(f"device {requested!r} is not one of auto, cpu, cuda")
    if capacity.now > 0 or capacity.startable:
        return DeviceChoice("cuda", capacity.resource, f"--device auto: {capacity.describe()}")
    return DeviceChoice("cpu", capacity.resource, f"--device auto: {capacity.describe()}; pass --device cuda to "
                                                  f"request {capacity.resource} anyway")


def node_types_capacity(config: Mapping[str, Any], resource: str) -> float:
    """Most units of ``resource`` an autoscaler config's worker node types can start: the sum over node types of
    ``max_workers x resources[resource]`` (``max_workers`` missing: the cluster's ``max_workers``), at most the
    cluster-wide ``max_workers`` nodes of the largest such type. 0 when no node type offers it."""
    types = config.get("available_node_types") or {}
    head = config.get("head_node_type")
    cluster_max = config.get("max_workers")
    total = 0.0
    largest = 0.0
    for name, node_type in types.items():
        per_node = float((node_type.get("resources") or {}).get(resource, 0) or 0)
        if name == head or per_node <= 0:
            continue
        count = node_type.get("max_workers", cluster_max)
        if count is None:
            return math.inf
        total += per_node * int(count)
        largest = max(largest, per_node)
    if cluster_max is not None:
        total = min(total, largest * int(cluster_max))
    return total


def alive_resource(nodes: Sequence[Mapping[str, Any]], resource: str) -> float:
    """Units of ``resource`` on the alive nodes of ``ray.nodes()``."""
    return sum(float(n.get("Resources", {}).get(resource, 0.0)) for n in nodes if n.get("Alive"))


def cluster_capacity(resource: str = "GPU") -> Capacity:
    """Read the connected cluster's :class:`Capacity` of ``resource`` (Ray must be initialised)."""
    import ray

    nodes = ray.nodes()
    now = alive_resource(nodes, resource)
    with contextlib.suppress(Exception):  # a private Ray API: absent or failing means "not reported"
        reported = ray._private.state.state.get_max_resources_from_cluster_config() or {}
        if reported.get(resource):
            return Capacity(resource, now, float(reported[resource]), "Ray's cluster config")
    config = _head_autoscaler_config(nodes)
    if config is None:
        return Capacity(resource, now, None, "no autoscaler config was found on the head node")
    path, parsed = config
    startable = node_types_capacity(parsed, resource)
    if not startable:
        return Capacity(resource, now, 0.0, f"no node type of its autoscaler config {path} offers it")
    return Capacity(resource, now, startable, f"autoscaler config {path}")


def _head_autoscaler_config(nodes: Sequence[Mapping[str, Any]]) -> tuple[str, dict] | None:
    """(path, parsed config) of this cluster's autoscaler, read on the head node; None if it runs none there."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    head = next((n["NodeID"] for n in nodes if n.get("Alive") and HEAD_RESOURCE in n.get("Resources", {})), None)
    if head is None:
        return None
    gcs_address = ray.get_runtime_context().gcs_address
    task = ray.remote(num_cpus=0, max_retries=0)(read_monitor_config).options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(head, soft=False))
    try:
        return ray.get(task.remote(gcs_address), timeout=60)
    except Exception:  # the head cannot run it (e.g. no worker allowed there): not found
        return None


def read_monitor_config(gcs_address: str, proc: str = "/proc") -> tuple[str, dict] | None:
    """On this node: the ``--autoscaling-config`` file of the autoscaler monitor of the cluster at
    ``gcs_address``, parsed (YAML or JSON); None if no such monitor runs here or its file is unreadable."""
    import yaml

    for pid in os.listdir(proc):
        if not pid.isdigit():
            continue
        try:
            with open(os.path.join(proc, pid, "cmdline"), "rb") as file:
                argv = [a.decode(errors="replace") for a in file.read().split(b"\0") if a]
        except OSError:
            continue
        if not any(a.endswith(MONITOR_SCRIPTS) for a in argv) or f"--gcs-address={gcs_address}" not in argv:
            continue
        path = next((a.split("=", 1)[1] for a in argv if a.startswith("--autoscaling-config=")), None)
        if path is None:
            return None
        try:
            with open(os.path.expanduser(path), encoding="utf-8") as file:
                parsed = yaml.safe_load(file)
        except (OSError, yaml.YAMLError):
            return None
        return (path, parsed) if isinstance(parsed, dict) else None
    return None


def _count(value: float) -> str:
    return f"{value:g}"
