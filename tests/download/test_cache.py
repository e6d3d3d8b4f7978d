"""``--berg-dir s3://...``: one verified copy per node (flock'd cache), used by every entry point."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from berg_ray.cli import main
from berg_ray.config import RELEASE_SUBDIR
from berg_ray.download.cache import cache_entry, resolve_berg_dir
from berg_ray.download.install import LOCK_FILE
from berg_ray.download.sources import MirrorSource
from berg_ray.storage import resolve_s3_options
from tests.download.conftest import SCANS, release_files, upload_mirror

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def s3_release(s3_env, release_dir, tmp_path, monkeypatch) -> str:
    """``s3://bucket/release/`` holding the generated release; the cache in a fresh BERG_RAY_CACHE."""
    bucket = s3_env.new_bucket()
    upload_mirror(s3_env, bucket, "release/", release_dir)
    monkeypatch.setenv("BERG_RAY_CACHE", str(tmp_path / "cache"))
    return f"s3://{bucket}/release/"


def _fetch_log(entry: Path) -> list[dict]:
    return [json.loads(line) for line in (entry / ".fetch-log.jsonl").read_text().splitlines()]


def _wait_for_lock_waiters(path: Path, count: int, processes: list, timeout_s: float = 120) -> None:
    """Wait until ``count`` processes are blocked on the flock of ``path`` (the kernel lists them in /proc/locks)."""
    inode = f":{os.stat(path).st_ino} "
    deadline = time.monotonic() + timeout_s
    while sum("->" in line and inode in line for line in Path("/proc/locks").read_text().splitlines()) < count:
        assert all(p.poll() is None for p in processes), "a process ended without waiting for the lock"
        assert time.monotonic() < deadline, "the processes never waited for the cache lock"
        time.sleep(0.05)


def test_two_processes_racing_for_a_release_download_it_once(s3_release, release_dir):
    entry = cache_entry(MirrorSource(s3_release.split("/")[2], "release/", resolve_s3_options()))
    entry.mkdir(parents=True)
    script = "from berg_ray.download import resolve_berg_dir; import sys; print(resolve_berg_dir(sys.argv[1]))"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    with open(entry / LOCK_FILE, "a") as lock:  # hold the lock so both processes are started and waiting for it
        fcntl.flock(lock, fcntl.LOCK_EX)
        racers = [subprocess.Popen([sys.executable, "-c", script, s3_release], env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True) for _ in range(2)]
        _wait_for_lock_waiters(entry / LOCK_FILE, 2, racers)
        fcntl.flock(lock, fcntl.LOCK_UN)
    outputs = [p.communicate(timeout=120) for p in racers]
    assert [p.returncode for p in racers] == [0, 0], outputs
    assert {out.strip() for out, _ in outputs} == {str(entry)}
    log = _fetch_log(entry)
    n_files = len(release_files(release_dir))
    assert sorted(line["files"] for line in log) == [0, n_files]  # one process fetched all, the other nothing
    assert sorted(line["gets"] for line in log) == [0, n_files]  # one ranged GET per (small) file, once
    assert release_files(entry) == release_files(release_dir)


def test_encode_cli_reads_an_s3_release_through_the_cache(s3_release, release_dir, tmp_path):
    from berg_ray import BERG

    video = np.random.default_rng(0).integers(0, 256, (6, 144, 256), dtype=np.uint8)
    np.save(tmp_path / "video.npy", video)
    argv = ["encode", "--berg-dir", s3_release, "--session", "session4_scan7", "--input", str(tmp_path / "video.npy"),
            "--out", str(tmp_path / "out.npy")]
    assert main(argv) == 0
    local = BERG(release_dir)
    expected = local.encode(local.get_encoding_model("calcium_2p-wang_2025-3DCNN", "session-4_scan-7"), video)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected)
    entry = resolve_berg_dir(s3_release)
    assert entry.is_relative_to(tmp_path / "cache") and (entry / RELEASE_SUBDIR).is_dir()
    assert [line["files"] for line in _fetch_log(entry)] == [len(release_files(release_dir))]


def test_serve_resolves_an_s3_release_on_each_replica(s3_release, release_dir):
    from berg_ray.config import CoreArgs, ServeArgs
    from berg_ray.serve.app import resolve_scan_ids
    from berg_ray.serve.core import CoreServer
    from berg_ray.serve.heads import ReadoutServer

    assert resolve_scan_ids(ServeArgs(berg_dir=s3_release)) == list(SCANS[::-1])
    assert ReadoutServer(s3_release)._berg_dir == resolve_berg_dir(s3_release)
    core = CoreServer(s3_release, ["session-8_scan-5"], "cpu", CoreArgs(), {})
    assert core._model.scan_ids == ["session-8_scan-5"]


def test_missing_s3_release_is_a_clear_error(s3_env, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BERG_RAY_CACHE", str(tmp_path / "cache"))
    bucket = s3_env.new_bucket()
    np.save(tmp_path / "v.npy", np.zeros((2, 144, 256), np.uint8))
    argv = ["encode", "--berg-dir", f"s3://{bucket}/nothing/", "--session", "session-8_scan-5", "--input",
            str(tmp_path / "v.npy"), "--out", str(tmp_path / "o.npy")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no release files under s3://") and "Traceback" not in err


def test_sweep_driver_and_encoder_actors_resolve_an_s3_release(s3_release, release_dir, tmp_path):
    from berg_ray.config import SweepArgs
    from berg_ray.download import cache
    from berg_ray.storage import open_store
    from berg_ray.sweep import layout
    from berg_ray.sweep.pipeline import ShardEncoder
    from berg_ray.sweep.preflight import resolve_scans
    from berg_ray.sweep.runner import _write_units

    args = SweepArgs(berg_dir=s3_release, input=str(tmp_path), output=str(tmp_path / "out"), sessions="all")
    assert resolve_scans(args) == list(SCANS[::-1])  # the driver: from its cached copy
    store = open_store(str(tmp_path / "out"))
    _write_units(resolve_berg_dir(s3_release), list(SCANS), store)
    assert {f.name for f in store.list_files()} == {f"_units/{s}.parquet" for s in SCANS}
    options = layout.content_options("none", 0, "float32")
    cache._RESOLVED.clear()  # as in a fresh actor process of this node
    encoder = ShardEncoder(s3_release, list(SCANS), store, options, 8, 1.0, s3=resolve_s3_options())
    assert sorted(encoder._model.scan_ids) == sorted(SCANS)
    log = _fetch_log(resolve_berg_dir(s3_release))
    assert [line["files"] for line in log] == [len(release_files(release_dir)), 0]  # fetched once, then reused


def test_sweep_cli_with_an_s3_release_fetches_it_once_per_node(s3_release, release_dir, tmp_path):
    import pyarrow.parquet as pq

    from berg_ray import BERG

    videos = np.random.default_rng(1).integers(0, 256, (2, 6, 144, 256), dtype=np.uint8)
    (tmp_path / "in").mkdir()
    for index, video in enumerate(videos):
        np.save(tmp_path / "in" / f"v{index}.npy", video)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("RAY_ADDRESS", None)  # its own local Ray, whose workers inherit BERG_RAY_CACHE and the S3 variables
    command = [sys.executable, "-m", "berg_ray.cli", "sweep", "--berg-dir", s3_release, "--input",
               str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--sessions", "session-8_scan-5",
               "--num-workers", "1", "--quiet"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    table = pq.read_table(tmp_path / "out")
    rows = dict(zip(table.column("stimulus_id").to_pylist(), table.column("responses").to_pylist()))
    local = BERG(release_dir)
    model = local.get_encoding_model("calcium_2p-wang_2025-3DCNN", "session-8_scan-5")
    for index, video in enumerate(videos):
        np.testing.assert_allclose(np.asarray(rows[f"v{index}"], np.float32), local.encode(model, video),
                                   rtol=1e-6, atol=1e-6)
    log = _fetch_log(cache_entry(MirrorSource(s3_release.split("/")[2], "release/", resolve_s3_options())))
    assert len(log) >= 2 and len({line["pid"] for line in log}) == len(log)  # the driver and the encoder actor
    assert sorted(line["files"] for line in log)[-1] == len(release_files(release_dir))
    assert sum(line["files"] for line in log) == len(release_files(release_dir))  # fetched once on this node


def test_encode_and_serve_reach_an_s3_release_through_the_endpoint_flag(s3_release, s3_env, tmp_path, monkeypatch):
    """`--s3-endpoint-url` on encode and serve (they take `--berg-dir s3://...`), with no AWS_ENDPOINT_URL set."""
    from berg_ray.cli import build_parser
    from berg_ray.serve.app import resolve_scan_ids
    from berg_ray.serve.cli import read_config, serve_args_from
    from berg_ray.serve.core import CoreServer
    from berg_ray.serve.heads import ReadoutServer

    monkeypatch.delenv("AWS_ENDPOINT_URL")
    np.save(tmp_path / "video.npy", np.zeros((2, 144, 256), np.uint8))
    assert main(["encode", "--berg-dir", s3_release, "--s3-endpoint-url", s3_env.endpoint, "--sessions",
                 "session-8_scan-5", "--input", str(tmp_path / "video.npy"), "--out", str(tmp_path / "r.npy"),
                 "--device", "cpu", "--quiet"]) == 0
    assert np.load(tmp_path / "r.npy").shape[0] == 2
    ns = build_parser().parse_args(["serve", "--berg-dir", s3_release, "--s3-endpoint-url", s3_env.endpoint])
    args = serve_args_from(read_config(None), ns.berg_dir, ns.sessions, ns.token_env, ns.precision, ns.device,
                           ns.s3_endpoint_url)
    assert args.s3_endpoint_url == s3_env.endpoint and resolve_scan_ids(args) == list(SCANS[::-1])
    assert ReadoutServer(s3_release, s3_env.endpoint)._berg_dir.is_relative_to(tmp_path / "cache")
    core = CoreServer(s3_release, ["session-8_scan-5"], "cpu", args.core, {}, s3_env.endpoint)
    assert core._model.scan_ids == ["session-8_scan-5"]
