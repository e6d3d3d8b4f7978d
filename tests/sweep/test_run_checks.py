"""``run`` refuses bad options, storage and releases before any compute starts (no Ray cluster needed)."""

from __future__ import annotations

import numpy as np
import pytest

from berg_ray.errors import BergRayError, ScanNotAvailableError, StorageError
from berg_ray.sweep import run
from tests.sweep.helpers import npy_bytes


def _options(berg_dir, source: str, target: str, **extra) -> dict:
    return dict(berg_dir=str(berg_dir), input=source, output=target, sessions=["session-8_scan-5"],
                show_progress=False, **extra)


def test_bad_options_are_named(fixture_berg_dir, tmp_path):
    with pytest.raises(BergRayError, match="batch_size"):
        run(**_options(fixture_berg_dir, str(tmp_path), str(tmp_path / "o"), batch_size=0))
    with pytest.raises(BergRayError, match="sessions"):
        run(**_options(fixture_berg_dir, str(tmp_path), str(tmp_path / "o")) | {"sessions": ["session-1_scan-1"]})
    with pytest.raises(BergRayError, match="unknown_option|extra"):
        run(**_options(fixture_berg_dir, str(tmp_path), str(tmp_path / "o"), unknown_option=1))
    with pytest.raises(ScanNotAvailableError, match="session-9_scan-6"):
        run(**_options(fixture_berg_dir, str(tmp_path), str(tmp_path / "o")) | {"sessions": ["session-9_scan-6"]})


def test_missing_or_empty_input(fixture_berg_dir, tmp_path):
    with pytest.raises(StorageError, match="does not exist"):
        run(**_options(fixture_berg_dir, str(tmp_path / "nope"), str(tmp_path / "o")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(StorageError, match="no input videos"):
        run(**_options(fixture_berg_dir, str(tmp_path / "empty"), str(tmp_path / "o")))


def test_s3_problems_fail_before_compute(s3_env, fixture_berg_dir, monkeypatch):
    bucket = s3_env.new_bucket()
    s3_env.client().put_object(Bucket=bucket, Key="in/a.npy", Body=npy_bytes(np.zeros((2, 144, 256), np.uint8)))
    source, target = f"s3://{bucket}/in/", f"s3://{bucket}/out/"
    with pytest.raises(StorageError, match="does not exist"):
        run(**_options(fixture_berg_dir, source, "s3://missing-bucket-xyz/out/"))
    with pytest.raises(StorageError, match="cannot reach"):
        run(**_options(fixture_berg_dir, source, target, s3_endpoint_url="http://127.0.0.1:9"))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    with pytest.raises(StorageError, match="rejected the credentials"):
        run(**_options(fixture_berg_dir, source, target))
    keys = [o["Key"] for o in s3_env.client().list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["in/a.npy"]  # nothing written


def test_precision_is_checked_against_the_cluster(ray_cluster, fixture_berg_dir, tmp_path):
    """tf32 needs GPU actors: refused on a CPU cluster before any file is written."""
    (tmp_path / "in").mkdir()
    np.save(tmp_path / "in" / "a.npy", np.zeros((2, 144, 256), np.uint8))
    with pytest.raises(BergRayError, match="tf32.*GPU"):
        run(**_options(fixture_berg_dir, str(tmp_path / "in"), str(tmp_path / "o"), precision="tf32"))
    assert not any(p.name.startswith("part-") for p in (tmp_path / "o").rglob("*"))
    with pytest.raises(BergRayError, match="precision"):
        run(**_options(fixture_berg_dir, str(tmp_path / "in"), str(tmp_path / "o"), precision="half"))
