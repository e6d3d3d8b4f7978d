"""A sweep submitted as a Ray job to a real 3-node Ray cluster on this machine (issue 9 section 3).

The cluster: ``ray.cluster_utils.Cluster``, a head and two worker nodes of 1 CPU each, each node with its own
release cache (``BERG_RAY_CACHE`` in the raylet's environment, inherited by its workers), token auth on. The job:
``berg-ray sweep --berg-dir s3://...`` (input, output and release on SeaweedFS) through ``JobSubmissionClient``.
Checked: the job succeeds; encoder actors ran on >= 2 nodes (the run summary's ``encoder nodes`` line, one node id
per part file); every (stimulus, scan) is written exactly once, equal to the local API; every node that used the
release fetched it once (the cache's ``.fetch-log.jsonl``). The cluster is stopped by ``Cluster.shutdown()``
(its own processes only; never ``ray stop``).
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from berg_ray.config import RELEASE_SUBDIR
from berg_ray.download.cache import cache_entry
from berg_ray.download.sources import MirrorSource
from berg_ray.storage import resolve_s3_options
from tests.download.conftest import release_files, upload_mirror
from tests.multinode_cluster import multinode_cluster
from tests.s3_server import S3Server
from tests.sweep.helpers import npy_bytes

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parents[1]
SCANS = ("session-8_scan-5", "session-4_scan-7")
N_VIDEOS, N_FRAMES = 6, 4
JOB_TIMEOUT_S = 420


@pytest.fixture
def release(tmp_path_factory) -> Path:
    from berg_ray.checkpoint.demo import write_demo_release

    return write_demo_release(tmp_path_factory.mktemp("release"), SCANS, n_units=16, seed=5)


@pytest.fixture
def cluster(ray_cluster, s3_env, tmp_path, monkeypatch):
    """(Cluster, dashboard URL, {node id: cache dir}); every process gets the S3 variables (s3_env) and a test
    token auth, each node its own cache. The test session's local Ray (ray_cluster) runs beside it, as in a full
    test run: a second Ray instance on the machine must not capture this cluster's jobs (tests/multinode_cluster)."""
    caches = {name: tmp_path / f"cache-{name}" for name in ("head", "worker-1", "worker-2")}
    node_args = {name: dict(num_cpus=1, env_vars={"BERG_RAY_CACHE": str(cache)}) for name, cache in caches.items()}
    with multinode_cluster(monkeypatch, node_args["head"], [node_args["worker-1"], node_args["worker-2"]]) as (
            cluster, url, node_ids):
        yield cluster, url, dict(zip(node_ids, caches.values()))


def submit(url: str, entrypoint: str, env_vars: dict[str, str], timeout_s: float = 120.0) -> tuple:
    """(client, job id); retries while the head's job agent is not up yet ("No available agent")."""
    from ray.job_submission import JobSubmissionClient

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client = JobSubmissionClient(url)
            return client, client.submit_job(entrypoint=entrypoint, runtime_env={"env_vars": env_vars})
        except Exception as exc:  # the dashboard or its job agent still starting
            if time.monotonic() > deadline:
                raise AssertionError(f"the job API did not accept the job in {timeout_s} s: {exc}") from exc
            time.sleep(2)


def wait_for_job(client, job_id: str, timeout_s: float) -> str:
    from ray.job_submission import JobStatus

    deadline = time.monotonic() + timeout_s
    while (status := client.get_job_status(job_id)) not in {JobStatus.SUCCEEDED, JobStatus.FAILED,
                                                             JobStatus.STOPPED}:
        assert time.monotonic() < deadline, f"job {job_id} still {status} after {timeout_s} s:\n" \
                                            f"{client.get_job_logs(job_id)[-3000:]}"
        time.sleep(2)
    return status


def read_parts(server: S3Server, bucket: str) -> list[dict]:
    import pyarrow.parquet as pq

    from berg_ray.sweep.layout import is_part_name

    from pyarrow.fs import FileSelector

    fs = server.arrow_fs()
    rows = []
    for info in fs.get_file_info(FileSelector(f"{bucket}/out", allow_not_found=True)):
        if is_part_name(info.base_name):
            rows += pq.read_table(info.path, filesystem=fs).to_pylist()
    return rows


def put_inputs(server: S3Server, bucket: str, release: Path, n_videos: int, n_frames: int) -> np.ndarray:
    """The release under s3://bucket/release/ and n_videos random videos under s3://bucket/in/ (v0.npy, ...)."""
    upload_mirror(server, bucket, "release/", release)
    videos = np.random.default_rng(3).integers(0, 256, (n_videos, n_frames, 144, 256), dtype=np.uint8)
    client = server.client()
    for index, video in enumerate(videos):
        client.put_object(Bucket=bucket, Key=f"in/v{index}.npy", Body=npy_bytes(video))
    return videos


def sweep_job(server: S3Server, bucket: str) -> tuple[str, dict[str, str]]:
    """(entrypoint, env_vars) of `berg-ray sweep` (as `python -m berg_ray.cli`: the same entry point, whatever
    PATH holds) over s3://bucket/in/ -> s3://bucket/out/ with the release at s3://bucket/release/."""
    entrypoint = (f"{sys.executable} -m berg_ray.cli sweep --berg-dir s3://{bucket}/release/ --input s3://{bucket}/in/ "
                  f"--out s3://{bucket}/out/ --sessions all --batch-size 1 --num-workers 2 "
                  f"--num-cpus-per-worker 1")
    env = {"AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key,
           "AWS_ENDPOINT_URL": server.endpoint, "PYTHONPATH": str(REPO_ROOT),
           # Ray Data starts the pool's actors asynchronously; waiting for both before the first micro-batch makes
           # both encoders (one per node) take work, however slowly a loaded machine loads the model
           "RAY_DATA_DEFAULT_WAIT_FOR_MIN_ACTORS_S": "180"}
    return entrypoint, env


def written_keys(server: S3Server, bucket: str) -> list[tuple[str, str]]:
    return sorted((row["stimulus_id"], row["train_session"]) for row in read_parts(server, bucket))


def test_sweep_job_on_three_nodes_runs_everywhere_exactly_once(cluster, s3_env, release):
    from ray.job_submission import JobStatus

    from berg_ray import BERG

    _, url, node_caches = cluster
    bucket = s3_env.new_bucket()
    videos = put_inputs(s3_env, bucket, release, N_VIDEOS, N_FRAMES)
    entrypoint, env = sweep_job(s3_env, bucket)
    start = time.monotonic()
    job_client, job_id = submit(url, entrypoint, env)
    status = wait_for_job(job_client, job_id, JOB_TIMEOUT_S)
    logs = job_client.get_job_logs(job_id)
    assert status == JobStatus.SUCCEEDED, logs[-4000:]
    print(f"multi-node sweep job: {time.monotonic() - start:.1f} s from submission")

    # encoder actors on >= 2 nodes: the summary names the node of every part file
    match = re.search(r"encoder nodes: (\d+) \((.*)\)", logs)
    assert match, logs[-3000:]
    per_node = dict(re.findall(r"([0-9a-f]+): (\d+) files", match.group(2)))
    assert int(match.group(1)) == len(per_node) >= 2, match.group(0)
    assert set(per_node) <= set(node_caches)
    assert sum(map(int, per_node.values())) == N_VIDEOS * len(SCANS)  # batch 1: one file per (stimulus, scan)

    # every (stimulus, scan) exactly once, equal to the local API
    rows = read_parts(s3_env, bucket)
    assert written_keys(s3_env, bucket) == sorted((f"v{i}", scan) for i in range(N_VIDEOS) for scan in SCANS)
    local = BERG(release)
    for scan in SCANS:
        model = local.get_encoding_model("calcium_2p-wang_2025-3DCNN", scan)
        got = {row["stimulus_id"]: row["responses"] for row in rows if row["train_session"] == scan}
        np.testing.assert_allclose(np.asarray(got["v0"], np.float32), local.encode(model, videos[0]),
                                   rtol=1e-5, atol=1e-6)

    # each node that used the release (the head's driver, every encoder's node) fetched it exactly once
    entry = cache_entry(MirrorSource(bucket, "release/", resolve_s3_options()))
    n_files = len(release_files(release))
    for node in set(per_node) | {cluster[0].head_node.node_id}:
        log_file = node_caches[node] / entry.relative_to(entry.parents[1]) / ".fetch-log.jsonl"
        lines = [json.loads(line) for line in log_file.read_text().splitlines()]
        assert sorted(line["files"] for line in lines)[-1] == n_files, lines
        assert sum(line["files"] for line in lines) == n_files, lines  # downloaded once on this node
        assert (node_caches[node] / entry.relative_to(entry.parents[1]) / RELEASE_SUBDIR).is_dir()


def encoder_nodes(url: str) -> set[str]:
    """Node ids of the alive Ray Data map actors (the sweep's encoders), from the cluster's state API."""
    from ray.util.state import list_actors

    return {actor.node_id for actor in list_actors(address=url, filters=[("state", "=", "ALIVE")], limit=1000)
            if "MapWorker" in actor.class_name}


def test_sweep_job_survives_losing_a_worker_node(cluster, s3_env, release):
    """A worker node running an encoder is killed mid-sweep: the job completes with every (stimulus, scan)
    exactly once, or, if it fails, submitting it again completes it with no duplicate."""
    from ray.job_submission import JobStatus

    ray_cluster, url, _ = cluster
    bucket = s3_env.new_bucket()
    n_videos = 16
    put_inputs(s3_env, bucket, release, n_videos, 8)
    entrypoint, env = sweep_job(s3_env, bucket)
    job_client, job_id = submit(url, entrypoint, env)
    expected = sorted((f"v{i}", scan) for i in range(n_videos) for scan in SCANS)
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while not written_keys(s3_env, bucket):  # mid-sweep: the first part file is out
        assert job_client.get_job_status(job_id) in {JobStatus.PENDING, JobStatus.RUNNING}, \
            job_client.get_job_logs(job_id)[-3000:]
        assert time.monotonic() < deadline, f"no part file written in {JOB_TIMEOUT_S} s; job " \
            f"{job_client.get_job_status(job_id)}:\n{job_client.get_job_logs(job_id)[-3000:]}"
        time.sleep(0.5)
    workers = {node.node_id: node for node in ray_cluster.worker_nodes}
    victims = sorted(encoder_nodes(url) & set(workers))
    assert victims, "no encoder actor on a worker node"
    ray_cluster.remove_node(workers[victims[0]], allow_graceful=False)
    done_at_loss = len(written_keys(s3_env, bucket))
    assert done_at_loss < len(expected), "the sweep ended before the node was removed: nothing was tested"
    status = wait_for_job(job_client, job_id, JOB_TIMEOUT_S)
    print(f"node loss after {done_at_loss}/{len(expected)} files: job {status}")
    if status != JobStatus.SUCCEEDED:  # Ray could not finish it: a re-submission completes it
        job_client, job_id = submit(url, entrypoint, env)
        status = wait_for_job(job_client, job_id, JOB_TIMEOUT_S)
        print(f"re-submitted: job {status}")
    assert status == JobStatus.SUCCEEDED, job_client.get_job_logs(job_id)[-4000:]
    assert written_keys(s3_env, bucket) == expected  # exactly once: no duplicate, no missing row
