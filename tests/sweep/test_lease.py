"""The output lease (issue 8, item 8) and the storage primitives behind it, on local disk and SeaweedFS (no Ray)."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from berg_ray.errors import StorageError
from berg_ray.storage import LocalStore, open_store, resolve_s3_options
from berg_ray.sweep import lease

STORES = ["local", pytest.param("s3", marks=pytest.mark.slow)]  # s3: the real S3 server


@pytest.fixture(params=STORES)
def store(request, tmp_path):
    if request.param == "local":
        return open_store(str(tmp_path / "out"))
    s3_env = request.getfixturevalue("s3_env")
    return open_store(f"s3://{s3_env.new_bucket()}/out/", resolve_s3_options())


def test_conditional_writes(store):
    first = store.put_if("x.json", b"1", None)
    assert first is not None and store.put_if("x.json", b"2", None) is None  # exists: create refused
    assert store.put_if("x.json", b"3", "not-the-version") is None
    second = store.put_if("x.json", b"4", first)
    assert second not in (None, first) and store.put_if("x.json", b"5", first) is None  # stale version
    data, version, age_s = store.read_versioned("x.json")
    assert data == b"4" and version == second and -5 < age_s < 30
    assert not store.delete_if("x.json", first) and store.delete_if("x.json", second)
    assert store.read_versioned("x.json") is None


def test_concurrent_creates_have_one_winner(store):
    results: list = []
    barrier = threading.Barrier(8)

    def create(index: int) -> None:
        barrier.wait()
        results.append(store.put_if("race.json", str(index).encode(), None))

    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r is not None for r in results) == 1


def test_second_sweep_is_refused_naming_the_first(store):
    with lease.acquire(store, ttl_s=30) as held:
        with pytest.raises(StorageError, match=f"another sweep.*run {held.run_id} .*pid {os.getpid()}"):
            lease.acquire(store, ttl_s=30)
        body = json.loads(store.read_versioned(lease.LEASE_FILE)[0])
        assert body["run_id"] == held.run_id and body["pid"] == os.getpid()
    assert store.read_versioned(lease.LEASE_FILE) is None  # released at the end
    lease.acquire(store).release()  # and free again


def test_heartbeat_keeps_a_live_lease_and_an_expired_one_is_taken_over(store):
    held = lease.acquire(store, ttl_s=2.0, heartbeat_s=0.3)
    try:
        time.sleep(3.5)  # longer than the TTL: renewed all along
        with pytest.raises(StorageError, match="another sweep"):
            lease.acquire(store, ttl_s=2.0)
    finally:
        held._stop.set()  # the owner dies: no more heartbeats, no release
        held._thread.join()
    with pytest.raises(StorageError, match="expires"):
        lease.acquire(store, ttl_s=2.0)  # not yet expired
    time.sleep(3.5)
    with lease.acquire(store, ttl_s=30) as taken:  # expired: taken over
        assert json.loads(store.read_versioned(lease.LEASE_FILE)[0])["run_id"] == taken.run_id
        assert held.renew() is False and taken.run_id in held.lost  # the dead owner cannot renew any more
        with pytest.raises(StorageError, match="lost its lease"):
            held.check()


def test_unreadable_lease_counts_as_held_until_it_expires(store):
    store.put_if(lease.LEASE_FILE, b"{not json", None)  # e.g. a create cut short
    with pytest.raises(StorageError, match="unknown sweep"):
        lease.acquire(store, ttl_s=1.0)
    time.sleep(2.5)
    lease.acquire(store, ttl_s=1.0).release()


def test_remove_staging(store):
    store.put_if("part-kept.parquet", b"published", None)
    for index in range(3):
        if isinstance(store, LocalStore):  # a writer killed before its os.replace
            store.staging_path(f"part-{index}.parquet").write_bytes(b"half a file")
        else:  # S3 stages on the worker's disk; only access probes can be left under the prefix
            store.client.put_object(Bucket=store.bucket, Key=f"{store.prefix}_tmp/.probe-{index}", Body=b"")
    assert store.remove_staging() == 3
    assert [info.name for info in store.list_files() if info.name != "_berg_ray.lock"] == ["part-kept.parquet"]
