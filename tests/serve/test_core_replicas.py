"""Two core replicas on a real two-node Ray cluster (issue 9 section 3, "Serve across GPUs", here on CPUs).

The cluster: ``tests/multinode_cluster`` (a head and a worker node of 2 CPUs each, token auth, its own temp dir).
The service: ``berg-ray serve --address <the cluster's GCS> --config <YAML>`` in a subprocess: the real CLI and
``build_app``, two ``CoreServer`` replicas of 1 CPU (``core.min_replicas = max_replicas = 2``), the real HTTP proxy
on 127.0.0.1. A subprocess because Serve's deployment runs from the driver: this pytest process may already be
connected to the session's local Ray (``ray_cluster`` in tests/conftest.py), and ``ray.init`` cannot join a second
cluster from it. Checked:

- responses over HTTP equal the local API (``BERG.encode``);
- both core replicas served requests: each replica's own Serve access log (``CALL encode OK``, one line per
  request it completed, in the cluster's log dir) has lines; the replicas run on both nodes (state API);
- one core replica's process is SIGKILLed (its pid from the state API) once it reports requests in progress (its
  own ``GET /v1/stats``): each request in flight gets a correct response or a 503 JSON error with Retry-After, none
  hangs (client timeout), and at least one was cut;
- once Serve has replaced the replica, every request succeeds, and the new replica serves requests too.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.multinode_cluster import REPO_ROOT, free_port, multinode_cluster

pytestmark = pytest.mark.slow
SCAN = "session-8_scan-5"
CORE_CLASS = "ServeReplica:berg:CoreServer"  # Ray actor class name of the core's replicas (app "berg")
SERVE_START_TIMEOUT_S = 420
REQUEST_TIMEOUT_S = 240  # per HTTP request: a hang fails the test instead of blocking it
REPLACE_TIMEOUT_S = 300
MAX_ROUNDS = 6


@pytest.fixture
def release(tmp_path_factory) -> Path:
    from berg_ray.checkpoint.demo import write_demo_release

    return write_demo_release(tmp_path_factory.mktemp("release"), [SCAN], n_units=16, seed=11)


@pytest.fixture
def cluster(monkeypatch):
    with multinode_cluster(monkeypatch, dict(num_cpus=2), [dict(num_cpus=2)]) as running:
        yield running


def service_config(path: Path) -> Path:
    """deployments/local-cpu.yaml with two 1-CPU core replicas of one torch thread, light ingress and heads."""
    config = yaml.safe_load((REPO_ROOT / "deployments" / "local-cpu.yaml").read_text())
    args = config["applications"][0]["args"]
    args["batching"] = {"max_batch_size": 4, "batch_wait_timeout_s": 0.02, "chunk_frames": 8}
    args["core"].update(num_cpus=1, torch_threads=1, min_replicas=2, max_replicas=2)
    args["ingress"]["num_cpus"] = args["readout"]["num_cpus"] = 0.25
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def service(cluster, release, tmp_path):
    """(URL, cluster, dashboard URL, node ids) of `berg-ray serve` joined to the cluster; stopped with SIGTERM."""
    ray_cluster, dashboard, nodes = cluster
    port = free_port()
    command = [sys.executable, "-m", "berg_ray.cli", "serve", "--berg-dir", str(release), "--port", str(port),
               "--config", str(service_config(tmp_path / "serve.yaml")), "--address", ray_cluster.gcs_address]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               cwd=REPO_ROOT, env=dict(os.environ))
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True).start()
    try:
        deadline = time.monotonic() + SERVE_START_TIMEOUT_S
        while not any("service ready" in line for line in lines):
            assert process.poll() is None, "berg-ray serve exited:\n" + "".join(lines)[-4000:]
            assert time.monotonic() < deadline, "berg-ray serve not ready:\n" + "".join(lines)[-4000:]
            time.sleep(1)
        yield f"http://127.0.0.1:{port}", ray_cluster, dashboard, nodes
    finally:
        process.send_signal(signal.SIGTERM)  # the CLI removes Serve from the joined cluster and exits
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError("berg-ray serve did not stop on SIGTERM:\n" + "".join(lines)[-4000:]) from None


def post_encode(url: str, video: np.ndarray) -> tuple:
    """(status, headers, body) of POST /v1/encode, or ("timeout", None, None) after REQUEST_TIMEOUT_S."""
    buffer = io.BytesIO()
    np.save(buffer, video)
    request = urllib.request.Request(f"{url}/v1/encode?train_session={SCAN}", data=buffer.getvalue(),
                                     headers={"Content-Type": "application/x-npy"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()
    except (TimeoutError, urllib.error.URLError) as error:
        return "timeout", None, repr(error)


def check_ok(result: tuple, expected: np.ndarray) -> None:
    status, _, body = result
    assert status == 200, (status, body)
    np.testing.assert_allclose(np.load(io.BytesIO(body)), expected, rtol=1e-5, atol=1e-6)


def core_stats(url: str) -> dict:
    """GET /v1/stats: the id and requests in progress of the core replica that answered."""
    with urllib.request.urlopen(f"{url}/v1/stats", timeout=REQUEST_TIMEOUT_S) as response:
        return json.loads(response.read())


def core_replicas(dashboard: str) -> list:
    """The alive core replica actors (pid, node id, name ``SERVE_REPLICA::berg#CoreServer#<id>``)."""
    from ray.util.state import list_actors

    return list_actors(address=dashboard, filters=[("class_name", "=", CORE_CLASS), ("state", "=", "ALIVE")])


def served_counts(ray_cluster, replica_ids: list[str]) -> dict[str, int]:
    """Per core replica id, the requests it completed: ``CALL encode OK`` lines of its own Serve replica log."""
    logs = Path(ray_cluster.head_node.get_session_dir_path()) / "logs" / "serve"
    counts = {}
    for replica in replica_ids:
        files = list(logs.glob(f"replica_berg_CoreServer_{replica}*.log"))
        counts[replica] = sum(f.read_text(errors="replace").count("CALL encode OK") for f in files)
    return counts


def encode_round(url: str, videos: np.ndarray) -> list[tuple]:
    with ThreadPoolExecutor(len(videos)) as pool:
        return list(pool.map(lambda video: post_encode(url, video), videos))


def test_two_core_replicas_serve_and_survive_losing_one(service, release):
    from berg_ray import BERG

    url, ray_cluster, dashboard, nodes = service
    local = BERG(release)
    model = local.get_encoding_model("calcium_2p-wang_2025-3DCNN", SCAN)
    rng = np.random.default_rng(7)
    short = rng.integers(0, 256, (6, 8, 144, 256), dtype=np.uint8)
    long = rng.integers(0, 256, (8, 48, 144, 256), dtype=np.uint8)
    expected_short = [local.encode(model, video) for video in short]
    expected_long = [local.encode(model, video) for video in long]

    replicas = {actor.name.split("#")[-1]: actor for actor in core_replicas(dashboard)}
    assert len(replicas) == 2, replicas
    assert {actor.node_id for actor in replicas.values()} == set(nodes), "the core replicas are not on both nodes"

    # both replicas serve: concurrent rounds, every response equal to the local API, until both logged requests
    for _ in range(MAX_ROUNDS):
        for result, expected in zip(encode_round(url, short), expected_short):
            check_ok(result, expected)
        counts = served_counts(ray_cluster, list(replicas))
        if min(counts.values()) > 0:
            break
    assert min(counts.values()) > 0, f"requests per core replica: {counts}"
    print(f"requests per core replica before the kill: {counts}")

    # kill a core replica's process while it works on requests: whichever replica answers GET /v1/stats with
    # requests in progress (Serve routes the stats call to the less busy replica, so which one is not up to us);
    # a batch that ends before any replica reported work is checked and followed by another
    for _ in range(MAX_ROUNDS):
        with ThreadPoolExecutor(len(long)) as pool:
            futures = [pool.submit(post_encode, url, video) for video in long]
            victim_id = None
            while victim_id is None and not all(f.done() for f in futures):
                stats = core_stats(url)
                victim_id = stats["replica"] if stats["ongoing_requests"] > 0 else None
                time.sleep(0.05)
            if victim_id is not None:
                victim = replicas[victim_id]
                os.kill(victim.pid, signal.SIGKILL)
            results = [future.result() for future in futures]  # each request has its own client timeout
        if victim_id is not None:
            break
        for result, expected in zip(results, expected_long):
            check_ok(result, expected)
    assert victim_id is not None, f"no core replica reported a request in progress in {MAX_ROUNDS} batches"
    statuses = [result[0] for result in results]
    print(f"in flight when core replica {victim_id} (pid {victim.pid}) was killed: {statuses}")
    assert "timeout" not in statuses, results
    for (status, headers, body), expected in zip(results, expected_long):
        if status == 503:
            assert headers["Content-Type"] == "application/json" and headers["Retry-After"], headers
            error = json.loads(body)
            assert set(error) == {"error", "type"} and "retry" in error["error"], error
        else:
            check_ok((status, headers, body), expected)
    assert 503 in statuses, f"no request was cut by the kill, nothing was tested: {statuses}"

    # Serve replaces the replica; afterwards every request succeeds and the new replica serves too
    deadline = time.monotonic() + REPLACE_TIMEOUT_S
    while len(current := {a.name.split("#")[-1]: a for a in core_replicas(dashboard)}) < 2 or victim_id in current:
        assert time.monotonic() < deadline, f"the killed core replica was not replaced: {current}"
        time.sleep(2)
    new_id = (set(current) - set(replicas)).pop()
    while served_counts(ray_cluster, [new_id])[new_id] == 0 and time.monotonic() < deadline:
        for result, expected in zip(encode_round(url, short), expected_short):  # the survivor until it runs
            check_ok(result, expected)
    assert served_counts(ray_cluster, [new_id])[new_id] > 0, f"replacement replica {new_id} served no request"
