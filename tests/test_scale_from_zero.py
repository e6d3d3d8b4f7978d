"""Scale from zero with Ray's own autoscaler (issue 15 A): a cluster at rest, its accelerator node types at zero.

The cluster: ``tests/autoscaling_cluster`` (a 2-CPU head running Ray's autoscaler with the fake multi-node
provider, which starts simulated nodes on this machine). Two node types, both at zero:

- ``accel``: 2 CPUs and 1 ``fake_gpu``, a custom resource standing in for a GPU (the simulated nodes have no real
  GPU, so the sweep's encoders request ``--accelerator-resource fake_gpu``);
- ``gpu``: 2 CPUs and 1 ``GPU`` (Ray's own GPU resource; a Serve core replica requests it, and finding no CUDA
  device it runs its model on the CPU).

Checked, through the real CLIs in subprocesses joined with ``--address``:

- ``berg-ray sweep --device auto``: the first line says the encoders go on fake_gpu because the autoscaler can
  start them; the sweep waits while the autoscaler starts the first node (the status line), every stimulus is
  written exactly once, every file by an encoder on a simulated accelerator node, never the head (Ray Data may grow
  the pool to a second node; how many were started is printed, not asserted: on 2 cores the work can end first);
- ``berg-ray serve`` (device auto): the core deployment asks for a GPU although none is up, the autoscaler starts
  the GPU node for it, and the service answers with the local API's responses.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.autoscaling_cluster import autoscaling_cluster
from tests.multinode_cluster import REPO_ROOT, free_port

pytestmark = pytest.mark.slow
SCAN = "session-8_scan-5"
NODE_TYPES = {"accel": {"CPU": 2, "fake_gpu": 1}, "gpu": {"CPU": 2, "GPU": 1}}
FAKE_NODE_PREFIX = "fffffffffffffffffffffffffffffffffffffffffffffffffff"  # ids the fake provider gives its nodes
RUN_TIMEOUT_S = 420


@pytest.fixture
def cluster(monkeypatch):
    """A fresh cluster at rest per test (the v1 autoscaler keeps "restarting" simulated nodes it lost track of,
    which holds back launches of other types: each test starts from zero)."""
    with autoscaling_cluster(monkeypatch, NODE_TYPES, head_cpus=2, max_per_type=2) as running:
        yield running


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    from berg_ray.checkpoint.demo import write_demo_release

    return write_demo_release(tmp_path_factory.mktemp("release"), [SCAN], n_units=16, seed=5)


def alive_nodes(dashboard: str) -> list:
    from ray.util.state import list_nodes

    return [n for n in list_nodes(address=dashboard) if n.state == "ALIVE"]


def simulated_nodes(dashboard: str, resource: str) -> list:
    return [n for n in alive_nodes(dashboard) if n.resources_total.get(resource, 0) > 0]


def test_a_sweep_on_a_cluster_at_rest_starts_accelerator_nodes_and_uses_them(cluster, release, tmp_path):
    ray_cluster, dashboard, config_path = cluster
    assert not simulated_nodes(dashboard, "fake_gpu")  # at rest: no accelerator anywhere
    rng = np.random.default_rng(3)
    (tmp_path / "in").mkdir()
    for index in range(4):
        np.save(tmp_path / "in" / f"v{index}.npy", rng.integers(0, 256, (4, 144, 256), dtype=np.uint8))
    command = [sys.executable, "-m", "berg_ray.cli", "sweep", "--berg-dir", str(release), "--input",
               str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--sessions", SCAN, "--batch-size", "1",
               "--chunk-frames", "4", "--address", ray_cluster.gcs_address, "--accelerator-resource", "fake_gpu",
               "--max-workers", "2", "--resource-wait-s", "300"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, cwd=REPO_ROOT,
                          env=dict(os.environ))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    err = [line for line in done.stderr.splitlines() if line.strip()]
    assert err[0] == ("encoders on fake_gpu: --device auto: no fake_gpu node is up, but its autoscaler can start "
                      f"up to 2 fake_gpu (autoscaler config {config_path})"), err[:5]
    assert any(line.startswith("waiting for 1 fake_gpu, 0 up: ") for line in err), err[:10]
    assert any(line.startswith("1 fake_gpu available after ") for line in err), err[:10]

    table = pq.read_table(tmp_path / "out").to_pandas()
    assert sorted(table["stimulus_id"]) == [f"v{i}" for i in range(4)]  # each stimulus once
    nodes_line = next(line for line in done.stdout.splitlines() if "encoder nodes:" in line)
    writers = [part.split(":")[0].strip() for part in nodes_line.split("(", 1)[1].rstrip(")").split(",")]
    accel_ids = {n.node_id for n in alive_nodes(dashboard) if n.resources_total.get("fake_gpu")} | set(writers)
    assert writers and all(w.startswith(FAKE_NODE_PREFIX) for w in writers), nodes_line  # never the head
    print(f"encoder nodes: {nodes_line.strip()}; accelerator nodes started: {len(accel_ids)}")


def test_serve_core_demand_starts_a_gpu_node(cluster, release, tmp_path):
    from berg_ray import BERG

    ray_cluster, dashboard, config_path = cluster
    assert not simulated_nodes(dashboard, "GPU")  # its node type is still at zero
    port = free_port()
    command = [sys.executable, "-m", "berg_ray.cli", "serve", "--berg-dir", str(release), "--port", str(port),
               "--address", ray_cluster.gcs_address]  # built-in defaults: device auto, core.num_gpus unset
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               cwd=REPO_ROOT, env=dict(os.environ))
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True).start()
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not any("service ready" in line for line in lines):
            assert process.poll() is None, "berg-ray serve exited:\n" + "".join(lines)[-4000:]
            assert time.monotonic() < deadline, "berg-ray serve not ready:\n" + "".join(lines)[-4000:]
            time.sleep(1)
        placement = next(line for line in lines if line.startswith("core replicas on "))
        assert placement.strip() == ("core replicas on GPU: --device auto: no GPU node is up, but its autoscaler can "
                                     f"start up to 2 GPU (autoscaler config {config_path}); the service is ready "
                                     "once a GPU node runs a core replica"), lines
        gpu_nodes = simulated_nodes(dashboard, "GPU")
        assert len(gpu_nodes) >= 1 and all(n.node_id.startswith(FAKE_NODE_PREFIX) for n in gpu_nodes)
        video = np.random.default_rng(1).integers(0, 256, (6, 144, 256), dtype=np.uint8)
        buffer = io.BytesIO()
        np.save(buffer, video)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/encode?train_session={SCAN}",
                                         data=buffer.getvalue(), headers={"Content-Type": "application/x-npy"})
        with urllib.request.urlopen(request, timeout=240) as response:
            served = np.load(io.BytesIO(response.read()))
        local = BERG(release)
        np.testing.assert_allclose(served, local.encode(local.get_encoding_model("calcium_2p-wang_2025-3DCNN", SCAN),
                                                        video), rtol=1e-5, atol=1e-6)
        from ray.util.state import list_actors

        cores = list_actors(address=dashboard, filters=[("class_name", "=", "ServeReplica:berg:CoreServer"),
                                                        ("state", "=", "ALIVE")])
        assert cores and {a.node_id for a in cores} <= {n.node_id for n in gpu_nodes}  # on the started GPU node
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
