"""A Ray cluster at rest whose own autoscaler starts simulated nodes on this machine (scale from zero, for tests).

The head (``tests/multinode_cluster``: its own temp dir, token auth) runs Ray's autoscaler monitor with an
``external`` node provider, Ray's ``FakeMultiNodeProvider``: when demand cannot be placed, the monitor starts a
raylet on this machine with the node type's resources (``RAY_FAKE_CLUSTER=1``), which joins the head's GCS as a
new node; idle nodes are ended after ``idle_timeout_minutes``. Every worker node type starts at zero
(``min_workers: 0``). The simulated nodes are children of the monitor process, which ``Cluster.shutdown()`` does
not know about: they are ended by PID (descendants of the monitor) before the cluster is shut down. Never
``ray stop``; ``ray.cluster_utils.AutoscalingCluster`` is not used because it runs ``ray stop --force``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.multinode_cluster import free_port, multinode_cluster

FAKE_PROVIDER = "ray.autoscaler._private.fake_multi_node.node_provider.FakeMultiNodeProvider"
HEAD_TYPE = "ray.head.default"


def autoscaler_config(gcs_address: str, head_cpus: float, worker_types: dict[str, dict[str, float]],
                      max_per_type: int, idle_timeout_minutes: float) -> dict[str, Any]:
    """A cluster-launcher style config for the fake provider: the head plus ``worker_types`` (name ->
    resources), each 0..``max_per_type`` nodes."""
    types: dict[str, Any] = {HEAD_TYPE: {"resources": {"CPU": head_cpus}, "node_config": {}, "max_workers": 0}}
    for name, resources in worker_types.items():
        types[name] = {"resources": dict(resources), "node_config": {}, "min_workers": 0, "max_workers": max_per_type}
    return {"cluster_name": "berg-ray-test", "max_workers": max_per_type * len(worker_types),
            "idle_timeout_minutes": idle_timeout_minutes, "upscaling_speed": 1.0,
            "provider": {"type": "external", "module": FAKE_PROVIDER, "gcs_address": gcs_address},
            "auth": {}, "head_node_type": HEAD_TYPE, "available_node_types": types,
            "file_mounts": {}, "cluster_synced_files": [], "initialization_commands": [], "setup_commands": [],
            "head_setup_commands": [], "worker_setup_commands": [], "head_start_ray_commands": [],
            "worker_start_ray_commands": []}


def descendants(pid: int) -> list[int]:
    """PIDs of every live descendant of ``pid`` (from /proc: each process's parent)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as file:
                parent = int(file.read().rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def end_processes(pids: list[int], grace_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL what is still alive after ``grace_s``."""
    for signum in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)
        deadline = time.monotonic() + grace_s
        while any(os.path.exists(f"/proc/{pid}") and not _zombie(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)


def _zombie(pid: int) -> bool:
    with contextlib.suppress(OSError, IndexError):
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as file:
            return file.read().rsplit(")", 1)[1].split()[0] == "Z"
    return True


@contextlib.contextmanager
def autoscaling_cluster(monkeypatch: Any, worker_types: dict[str, dict[str, float]], head_cpus: float = 2,
                        max_per_type: int = 2, idle_timeout_minutes: float = 0.1
                        ) -> Iterator[tuple[Any, str, Path]]:
    """Start the head with its autoscaler; yield (Cluster, dashboard URL, the autoscaler config's path).

    ``worker_types``: node type name -> resources of one node (e.g. ``{"CPU": 2, "accel": 1}``), all at zero.
    """
    import ray
    from ray._private import ray_constants

    port = free_port()
    gcs_address = f"{ray._private.services.get_node_ip_address()}:{port}"  # Ray's default node address
    config_dir = Path(tempfile.mkdtemp(prefix="berg-ray-autoscaler-"))
    config_path = config_dir / "autoscaler.yaml"
    config_path.write_text(json.dumps(autoscaler_config(gcs_address, head_cpus, worker_types, max_per_type,
                                                        idle_timeout_minutes)))
    monkeypatch.setenv("RAY_FAKE_CLUSTER", "1")  # read by the monitor (a child of this process) and the provider
    monkeypatch.setenv("AUTOSCALER_UPDATE_INTERVAL_S", "1")
    monkeypatch.setenv("AUTOSCALER_METRIC_PORT", str(free_port()))
    head = dict(num_cpus=head_cpus, gcs_server_port=port, autoscaling_config=str(config_path))
    with multinode_cluster(monkeypatch, head, []) as (cluster, dashboard, _):
        monitor = cluster.head_node.all_processes[ray_constants.PROCESS_TYPE_MONITOR][0].process.pid
        try:
            yield cluster, dashboard, config_path
        finally:
            end_processes(descendants(monitor))  # the simulated nodes, before the cluster itself
    with contextlib.suppress(OSError):
        config_path.unlink()
        config_dir.rmdir()
