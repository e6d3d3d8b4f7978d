"""MEIs and structure-function properties as one Ray job on a real 3-node Ray cluster on this machine (issue 19).

The cluster (tests/multinode_cluster): a head and two worker nodes of 1 CPU each, token auth. The job runs
``berg-ray experiment mei`` then ``berg-ray experiment properties`` with the release and the outputs on SeaweedFS
(s3://). Checked: the job succeeds; MEI batches (one unit each) ran on >= 2 nodes (each unit's record names its
node); every stored MEI equals, byte for byte, the same unit's MEI computed here in process (seeded); the properties
tables hold every chosen unit and pair, with the features of the release's readout.
"""

from __future__ import annotations

import io
import json
import sys
import time

import numpy as np
import pandas as pd
import pytest

from tests.download.conftest import upload_mirror
from tests.multinode_cluster import multinode_cluster
from tests.test_multinode import submit, wait_for_job

pytestmark = pytest.mark.slow
SCAN = "session-8_scan-5"
MEI_UNITS = (0, 1, 2, 3)
PROPERTY_UNITS = 6
MEI_OPTIONS = dict(frames=3, burn_in=1, steps=3)
JOB_TIMEOUT_S = 600


@pytest.fixture
def release(tmp_path_factory):
    from berg_ray.checkpoint.demo import write_demo_release

    return write_demo_release(tmp_path_factory.mktemp("release"), [SCAN], n_units=16, seed=7)


@pytest.fixture
def cluster(ray_cluster, s3_env, monkeypatch):
    node = dict(num_cpus=1)
    with multinode_cluster(monkeypatch, node, [node, node]) as (cluster, url, node_ids):
        yield cluster, url, node_ids


def job(bucket: str) -> str:
    cli = f"{sys.executable} -m berg_ray.cli experiment"
    common = f"--berg-dir s3://{bucket}/release/ --sessions {SCAN} --out s3://{bucket}/out/ --quiet"
    mei = (f"{cli} mei {common} --units {','.join(map(str, MEI_UNITS))} --units-per-batch 1 "
           f"--frames {MEI_OPTIONS['frames']} --burn-in-frames {MEI_OPTIONS['burn_in']} --steps {MEI_OPTIONS['steps']} "
           "--directions 2 --repeats 1 --num-workers 2 --num-cpus-per-worker 1")
    properties = (f"{cli} properties {common} --units 0-{PROPERTY_UNITS - 1} --clips 2 --clip-frames 3 "
                  "--burn-in-frames 1 --num-workers 2 --num-cpus-per-worker 1")
    return f"{mei} && {properties}"


def read_object(server, bucket: str, key: str) -> bytes:
    return server.client().get_object(Bucket=bucket, Key=key)["Body"].read()


def test_mei_and_properties_job_on_three_nodes(cluster, s3_env, release):
    from ray.job_submission import JobStatus

    from berg_ray.checkpoint.release import load_model
    from berg_ray.mei import MeiSettings, optimise_meis

    _, url, node_ids = cluster
    bucket = s3_env.new_bucket()
    upload_mirror(s3_env, bucket, "release/", release)
    env = {"AWS_ACCESS_KEY_ID": s3_env.access_key, "AWS_SECRET_ACCESS_KEY": s3_env.secret_key,
           "AWS_ENDPOINT_URL": s3_env.endpoint, "RAY_DATA_DEFAULT_WAIT_FOR_MIN_ACTORS_S": "180"}
    start = time.monotonic()
    client, job_id = submit(url, job(bucket), env)
    status = wait_for_job(client, job_id, JOB_TIMEOUT_S)
    logs = client.get_job_logs(job_id)
    assert status == JobStatus.SUCCEEDED, logs[-4000:]
    print(f"multi-node mei + properties job: {time.monotonic() - start:.1f} s from submission")

    # MEIs: one batch per unit, spread over the nodes; each equal to the same unit's MEI computed here
    table = pd.read_parquet(io.BytesIO(read_object(s3_env, bucket, f"out/mei/{SCAN}.parquet")))
    assert table["readout_id"].tolist() == list(MEI_UNITS)
    assert set(table["node_id"]) <= set(node_ids) and table["node_id"].nunique() >= 2, table["node_id"].tolist()
    model = load_model(release, [SCAN], device="cpu")
    for unit in MEI_UNITS[:2]:
        stored = np.load(io.BytesIO(read_object(s3_env, bucket, f"out/mei/{SCAN}/readout-{unit:05d}.npy")))
        record = json.loads(read_object(s3_env, bucket, f"out/mei/{SCAN}/readout-{unit:05d}.json"))
        assert record["node_id"] in node_ids and record["steps"] == MEI_OPTIONS["steps"]
        local = optimise_meis(model, SCAN, [unit], MeiSettings(**MEI_OPTIONS)).videos[0]
        assert stored.dtype == np.uint8 and stored.shape == (3, 144, 256)
        np.testing.assert_array_equal(stored, local)

    # properties: every unit and pair, the release's readout features
    units = pd.read_parquet(io.BytesIO(read_object(s3_env, bucket, f"out/properties/{SCAN}_units.parquet")))
    pairs = pd.read_parquet(io.BytesIO(read_object(s3_env, bucket, f"out/properties/{SCAN}_pairs.parquet")))
    assert units["readout_id"].tolist() == list(range(PROPERTY_UNITS))
    assert len(pairs) == PROPERTY_UNITS * (PROPERTY_UNITS - 1) // 2
    features = np.stack(units["features"].to_list())
    weights = model.readouts[SCAN].weights[:, :, :PROPERTY_UNITS]  # (S, 128, U) -> stream-major (U, 512)
    np.testing.assert_array_equal(features, weights.permute(2, 0, 1).reshape(PROPERTY_UNITS, -1).numpy())
    assert pairs["signal_corr"].between(-1, 1).all() and pairs["rf_distance_deg"].ge(0).all()
    assert np.isfinite(pairs["feature_cosine"].to_numpy()).all()
