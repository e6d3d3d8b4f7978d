"""Issue 8 end to end on the shared Ray cluster: bad files do not stop a sweep, one sweep per output (local and
SeaweedFS), killed runs leave nothing behind that blocks or pollutes the next, changed inputs are recomputed once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from berg_ray.errors import BergRayError, StorageError
from berg_ray.storage import open_store, resolve_s3_options
from berg_ray.sweep import lease, run
from tests.sweep.helpers import npy_bytes
from tests.sweep.test_hostile_inputs import hostile_files
from tests.sweep.test_sweep_e2e import (REPO_ROOT, _encoder_pids, _local_api, _parts, _rows, _wait_for_parts,
                                        _wait_until_gone, _write_inputs)

pytestmark = pytest.mark.slow
SCAN = "session-4_scan-7"  # the smaller fixture scan (96 units)


def _options(berg_dir, source, target, **extra) -> dict:
    return dict(berg_dir=str(berg_dir), input=str(source), output=str(target), sessions=[SCAN], show_progress=False,
                **extra)


def test_bad_files_are_listed_and_the_sweep_goes_on(ray_cluster, fixture_berg_dir, fixture_stimuli, tmp_path):
    source, out = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    files = hostile_files(fixture_stimuli[0, :8])
    for name, (data, _) in files.items():
        (source / name).write_bytes(data)
    good = fixture_stimuli[:, :6]
    for index, video in enumerate(good):
        (source / f"good{index}.npy").write_bytes(npy_bytes(video))
    result = run(**_options(fixture_berg_dir, source, out, batch_size=4, resize=True))
    failed = {e["stimulus_id"]: e for e in result.errors}
    assert sorted(failed) == sorted(name.split(".")[0] for name in files)
    assert all(e["error_type"] == "InvalidVideoError" for e in failed.values())
    table = pq.read_table(out / "_errors" / "errors.parquet")
    assert sorted(table.column("stimulus_id").to_pylist()) == sorted(failed)
    assert set(table.column("error_type").to_pylist()) == {"InvalidVideoError"}
    rows = _rows(pq.read_table(out))
    assert sorted(rows) == [(f"good{i}", SCAN) for i in range(3)]
    for index, expected in enumerate(_local_api(fixture_berg_dir, good, SCAN)):
        np.testing.assert_allclose(rows[(f"good{index}", SCAN)], expected, rtol=1e-6, atol=1e-6)
    assert not (out / lease.LEASE_FILE).exists()


def test_second_sweep_refused_killed_one_expires_and_next_run_completes(ray_cluster, fixture_berg_dir,
                                                                         fixture_stimuli, tmp_path):
    videos = _write_inputs(tmp_path / "in", fixture_stimuli, n=6, frames=8)
    out = tmp_path / "out"
    ttl_s = 20.0  # long enough that the refusal below still sees it on a loaded machine (killing took > 6 s)
    first = _options(fixture_berg_dir, tmp_path / "in", out, batch_size=2, lease_ttl_s=ttl_s)
    address = ray_cluster.get_runtime_context().gcs_address
    driver = subprocess.Popen([sys.executable, "-c", f"from berg_ray.sweep import run; run(**{first!r}, "
                               f"address={address!r})"], cwd=REPO_ROOT)
    try:
        _wait_for_parts(out, 1)
        holder = json.loads((out / lease.LEASE_FILE).read_text())
        assert holder["pid"] == driver.pid
        started = time.monotonic()
        with pytest.raises(StorageError, match=f"another sweep .*run {holder['run_id']} .*pid {driver.pid}"):
            run(**_options(fixture_berg_dir, tmp_path / "in", out, batch_size=3))  # other micro-batches
        assert time.monotonic() - started < 30  # refused up front: no model, no actor
    finally:
        driver.send_signal(signal.SIGKILL)
        killed = time.monotonic()  # its last renewal was before this: the lease expires by killed + ttl_s
        driver.wait()
    _wait_until_gone(_encoder_pids)
    stale = out / "_tmp" / "part-x.parquet.0123.tmp"  # what a writer killed mid-file leaves
    stale.parent.mkdir(exist_ok=True)
    stale.write_bytes(b"PAR1 half a file")
    with pytest.raises(StorageError, match="expires"):  # the dead run's lease is still valid for a few seconds
        run(**_options(fixture_berg_dir, tmp_path / "in", out, batch_size=3))
    time.sleep(max(0.0, killed + ttl_s + 0.5 - time.monotonic()))
    result = run(**_options(fixture_berg_dir, tmp_path / "in", out, batch_size=2))
    assert result.ok and not stale.exists() and not (out / lease.LEASE_FILE).exists()
    rows = _rows(pq.read_table(out))  # exactly once
    assert sorted(rows) == [(f"clip{i:02d}", SCAN) for i in range(6)]
    for index, expected in enumerate(_local_api(fixture_berg_dir, videos, SCAN)):
        np.testing.assert_allclose(rows[(f"clip{index:02d}", SCAN)], expected, rtol=1e-6, atol=1e-6)


def test_changed_input_is_recomputed_exactly_once(ray_cluster, fixture_berg_dir, fixture_stimuli, tmp_path):
    videos = _write_inputs(tmp_path / "in", fixture_stimuli, n=4, frames=6)
    out = tmp_path / "out"
    options = _options(fixture_berg_dir, tmp_path / "in", out, batch_size=2, reduce="mean")
    assert run(**options).ok
    before = _rows(pq.read_table(out))
    replaced = fixture_stimuli[2, 20:26]
    np.save(tmp_path / "in" / "clip01.npy", replaced)
    os.utime(tmp_path / "in" / "clip01.npy", ns=(time.time_ns(), time.time_ns() + 10**9))  # a new mtime for sure
    result = run(**options)
    assert result.ok and result.inputs_changed == 1 and result.files_written == 1
    rows = _rows(pq.read_table(out))  # asserts one row per (stimulus, scan)
    assert sorted(rows) == sorted(before)
    expected = _local_api(fixture_berg_dir, replaced[None], SCAN)[0].mean(axis=0)
    np.testing.assert_allclose(rows[("clip01", SCAN)], expected, rtol=1e-5, atol=1e-6)
    for key in ("clip00", "clip02", "clip03"):
        np.testing.assert_array_equal(rows[(key, SCAN)], before[(key, SCAN)])
    assert not np.allclose(rows[("clip01", SCAN)], before[("clip01", SCAN)])
    assert len(videos) == 4 and run(**options).files_written == 0  # nothing changed since: no model work


def test_s3_lease_refuses_then_expires_and_changed_objects_recompute(ray_cluster, s3_env, fixture_berg_dir,
                                                                     fixture_stimuli):
    bucket, client = s3_env.new_bucket(), s3_env.client()
    for index in range(2):
        client.put_object(Bucket=bucket, Key=f"in/v{index}.npy", Body=npy_bytes(fixture_stimuli[index, :4]))
    options = _options(fixture_berg_dir, f"s3://{bucket}/in/", f"s3://{bucket}/out/", batch_size=2)
    other = lease.acquire(open_store(options["output"], resolve_s3_options()), ttl_s=3.0, heartbeat_s=0.5)
    try:
        with pytest.raises(StorageError, match=f"another sweep .*run {other.run_id}"):
            run(**options)
    finally:
        other._stop.set()  # that sweep dies without releasing
        other._thread.join()
    time.sleep(4.0)
    assert run(**options).ok
    client.put_object(Bucket=bucket, Key="in/v1.npy", Body=npy_bytes(fixture_stimuli[2, :4]))  # new ETag
    result = run(**options)
    assert result.inputs_changed == 1 and result.files_written == 1
    rows = _rows(pq.read_table(f"{bucket}/out", filesystem=s3_env.arrow_fs()))
    assert sorted(rows) == [("v0", SCAN), ("v1", SCAN)]
    np.testing.assert_allclose(rows[("v1", SCAN)], _local_api(fixture_berg_dir, fixture_stimuli[2:3, :4], SCAN)[0],
                               rtol=1e-6, atol=1e-6)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="out/").get("Contents", [])]
    assert "out/_lease.json" not in keys and not [k for k in keys if k.startswith("out/_tmp/")]


def test_micro_batch_larger_than_any_node_is_refused_before_compute(ray_cluster, fixture_berg_dir, fixture_stimuli,
                                                                     tmp_path):
    _write_inputs(tmp_path / "in", fixture_stimuli, n=2, frames=4)
    with pytest.raises(BergRayError, match=r"needs .* GB .*largest Ray node offers .*--batch-size or --chunk-frames"):
        run(**_options(fixture_berg_dir, tmp_path / "in", tmp_path / "out", batch_size=512, chunk_frames=100_000))
    assert not _parts(tmp_path / "out") and not (tmp_path / "out" / lease.LEASE_FILE).exists()
    assert Path(tmp_path / "in").is_dir()


def test_hostile_names_and_links_do_not_stop_a_sweep_and_reruns_are_stable(ray_cluster, fixture_berg_dir,
                                                                           fixture_stimuli, tmp_path):
    """Issue 16, finding 3: a name that is not UTF-8, links leaving the input or dangling, a sparse 20,000-frame
    .npy and a newline in a name, all in one micro-batch with valid inputs."""
    source, outside, out = tmp_path / "in", tmp_path / "outside", tmp_path / "out"
    source.mkdir()
    outside.mkdir()
    clips = fixture_stimuli[:, :6]
    (source / "good.npy").write_bytes(npy_bytes(clips[0]))
    (source / "new\nline.npy").write_bytes(npy_bytes(clips[1]))  # a valid input: encoded under its exact name
    (source / "x\n    y: forged.npy").write_bytes(b"not numpy")
    with open(os.path.join(os.fsencode(source), b"caf\xe9.npy"), "wb") as handle:
        handle.write(npy_bytes(clips[0]))
    (outside / "secret.npy").write_bytes(npy_bytes(clips[2]))
    (source / "link.npy").symlink_to(outside / "secret.npy")
    (source / "gone.npy").symlink_to(outside / "missing.npy")
    _sparse_npy(source / "long.npy", (20_000, 144, 256))
    options = _options(fixture_berg_dir, source, out, batch_size=8, max_frames=100)
    expected_errors = {"caf\\xe9": "InputNameError", "link": "InputLinkError", "gone": "InputLinkError",
                       "long": "InvalidVideoError", "x\n    y: forged": "InvalidVideoError"}
    for attempt in range(2):  # the re-run neither fails the valid inputs nor writes them again
        result = run(**options)
        assert {e["stimulus_id"]: e["error_type"] for e in result.errors} == expected_errors
        assert result.files_written == (1 if attempt == 0 else 0)
        table = pq.read_table(out / "_errors" / "errors.parquet")
        assert dict(zip(table.column("stimulus_id").to_pylist(), table.column("error_type").to_pylist())) == \
            expected_errors
        rows = _rows(pq.read_table(out))
        assert sorted(rows) == [("good", SCAN), ("new\nline", SCAN)]
        error_lines = result.summary().split("  errors: 5", 1)[1].splitlines()[1:]
        assert len(error_lines) == 5 and all(line.startswith("    ") and line[4] != " " for line in error_lines)
        forged_line = "    x\\n    y: forged: x\\n    y: forged.npy: not a readable"
        assert any(line.startswith(forged_line) for line in error_lines)
    for index, expected in enumerate(_local_api(fixture_berg_dir, clips[:2], SCAN)):
        np.testing.assert_allclose(rows[(["good", "new\nline"][index], SCAN)], expected, rtol=1e-6, atol=1e-6)
    followed = run(**options, follow_symlinks=True)
    assert {e["stimulus_id"] for e in followed.errors} == set(expected_errors) - {"link"}
    assert followed.files_written == 1 and ("link", SCAN) in _rows(pq.read_table(out))


def _sparse_npy(path: Path, shape: tuple[int, ...]) -> None:
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": "|u1", "fortran_order": False, "shape": shape})
        handle.truncate(handle.tell() + int(np.prod(shape)))
