"""A real multi-node Ray cluster on this machine for tests (``ray.cluster_utils.Cluster``), beside any other Ray.

The cluster lives in its own short Ray temp dir and records its address there, not in
/tmp/ray/ray_current_cluster (where cluster_utils writes it and a plain ``ray.init()`` of any process on this
machine would join it). Ray resolves "auto" (a job's driver, ``ray.init()`` in a process started with the
cluster's temp dir) in the head's temp dir: with the address written there, a process joins this cluster even
while another Ray instance runs on the machine (the test session's local Ray); without it, "auto" picked any
running GCS (a job once ran on the wrong cluster and hung). Token auth is on, as on a ``ray start`` cluster.
The cluster is stopped by ``Cluster.shutdown()`` (its own processes only; never ``ray stop``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def multinode_cluster(monkeypatch: Any, head_args: dict[str, Any], worker_args: list[dict[str, Any]]
                      ) -> Iterator[tuple[Any, str, list[str]]]:
    """Start a head (with a dashboard on 127.0.0.1) and one worker node per ``worker_args``; yield
    (Cluster, dashboard URL, node ids: head first, then the workers in order).

    Args:
        monkeypatch: pytest's; this process's RAY_AUTH_MODE, RAY_ADDRESS, PYTHONPATH (the repository, for every
            process of the cluster) and Ray's address file are set for the block and restored after it.
        head_args / worker_args: ``Cluster`` node arguments (num_cpus, env_vars, ...); the temp dir and the
            dashboard's ports are added here.
    """
    import ray
    from ray._private.authentication.authentication_token_setup import ensure_token_if_auth_enabled
    from ray._raylet import Config
    from ray.cluster_utils import Cluster

    temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths live under it
    monkeypatch.setattr(ray._private.utils, "write_ray_address",
                        functools.partial(ray._private.utils.write_ray_address, temp_dir=temp_dir))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    # token auth as on a `ray start` cluster: RAY_AUTH_MODE=token and the token in ~/.ray/auth_token (created as
    # ray.init creates it for a new local cluster); the mode is re-read by this process like ray.init does
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    Config.initialize("")
    ensure_token_if_auth_enabled(None, create_token_if_missing=True)
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    dashboard_port = free_port()
    cluster = None
    try:
        cluster = Cluster(initialize_head=True, shutdown_at_exit=True, head_node_args=dict(
            head_args, temp_dir=temp_dir, include_dashboard=True, dashboard_host="127.0.0.1",
            dashboard_port=dashboard_port, dashboard_agent_listen_port=free_port()))
        nodes = [cluster.head_node.node_id]
        for args in worker_args:
            nodes.append(cluster.add_node(**args, temp_dir=temp_dir).node_id)
        cluster.wait_for_nodes()
        recorded = ray._private.utils.read_ray_address(temp_dir)  # what a job's supervisor resolves "auto" to
        assert recorded == cluster.gcs_address, (
            f"{temp_dir} records {recorded!r}, not this cluster's GCS {cluster.gcs_address}; 'auto' resolves to "
            f"{ray._private.services.canonicalize_bootstrap_address('auto', temp_dir)} here "
            f"(RAY_ADDRESS={os.environ.get('RAY_ADDRESS')!r})")
        yield cluster, f"http://127.0.0.1:{dashboard_port}", nodes
    finally:
        if cluster is not None:
            cluster.shutdown()
        monkeypatch.undo()
        Config.initialize("")  # this process's Ray config back to its environment
        shutil.rmtree(temp_dir, ignore_errors=True)
