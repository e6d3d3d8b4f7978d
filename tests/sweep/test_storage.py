"""berg_ray.storage against a local directory and a real S3 server (SeaweedFS)."""

from __future__ import annotations

import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from berg_ray.errors import StorageError
from berg_ray.storage import LocalStore, S3Options, S3Store, open_store, resolve_s3_options


def _stage(store, name: str, data: bytes):
    staged = store.staging_path(name)
    staged.write_bytes(data)
    return staged


def test_open_store_parses_uris(tmp_path):
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    assert isinstance(open_store(f"file://{tmp_path}"), LocalStore)
    store = open_store("s3://bucket/some/prefix")
    assert isinstance(store, S3Store) and store.bucket == "bucket" and store.prefix == "some/prefix/"
    assert open_store("s3://bucket").prefix == ""
    for bad in ("", "gs://bucket/x", "s3:///x"):
        with pytest.raises(StorageError):
            open_store(bad)


def test_local_publish_is_atomic_and_listed(tmp_path):
    store = open_store(str(tmp_path / "out"))
    store.check_writable()
    staged = _stage(store, "a/b.bin", b"hello")
    assert "a/b.bin" not in [f.name for f in store.list_files()]  # staged, not yet visible
    store.publish(staged, "a/b.bin")
    assert not staged.exists() and store.read_bytes("a/b.bin") == b"hello"
    assert [f.name for f in store.list_files() if not f.name.startswith("_")] == ["a/b.bin"]
    with pytest.raises(StorageError, match="does not exist"):
        open_store(str(tmp_path / "missing")).check_readable()


def test_s3_roundtrip_and_pyarrow_footer(s3_env):
    bucket = s3_env.new_bucket()
    store = open_store(f"s3://{bucket}/run/", resolve_s3_options())
    assert store.options.access_key == s3_env.access_key  # static credentials travel to the workers
    store.check_readable()
    store.check_writable()
    path = store.staging_path("t.parquet")
    pq.write_table(pa.table({"x": [1, 2]}).replace_schema_metadata({b"k": b"v"}), path)
    store.publish(path, "t.parquet")
    assert [f.name for f in store.list_files(recursive=False)] == ["t.parquet"]
    fs, key = store.arrow_path("t.parquet")
    assert pq.read_schema(key, filesystem=fs).metadata[b"k"] == b"v"
    assert pq.read_table(pa.BufferReader(store.read_bytes("t.parquet"))).num_rows == 2


def test_s3_errors_are_clear_and_fast(s3_env):
    bucket = s3_env.new_bucket()
    good = S3Options(s3_env.endpoint, access_key=s3_env.access_key, secret_key=s3_env.secret_key)
    with pytest.raises(StorageError, match="does not exist"):
        S3Store("no-such-bucket-here", "", good).check_readable()
    wrong = S3Options(s3_env.endpoint, access_key="wrong", secret_key="wrong")
    with pytest.raises(StorageError, match="rejected the credentials"):
        S3Store(bucket, "x/", wrong).check_readable()
    with pytest.raises(StorageError, match="rejected the credentials|access denied"):
        S3Store(bucket, "x/", wrong).check_writable()
    with pytest.raises(StorageError, match="access denied"):
        S3Store(bucket, "x/", S3Options(s3_env.endpoint, anonymous=True)).check_writable()
    start = time.monotonic()
    with pytest.raises(StorageError, match="cannot reach the S3 endpoint"):
        S3Store(bucket, "", S3Options("http://127.0.0.1:9", access_key="a", secret_key="b")).check_readable()
    assert time.monotonic() - start < 30
