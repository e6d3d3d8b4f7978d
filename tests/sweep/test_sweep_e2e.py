"""End-to-end sweeps on the shared Ray cluster: S3 (SeaweedFS) and local, re-runs, kills and resumes."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from berg_ray.sweep import run
from berg_ray.sweep.cli import add_sweep_command
from berg_ray.sweep.video import decode_video
from tests.sweep.helpers import mp4_bytes, npy_bytes

pytestmark = pytest.mark.slow
SCANS = ["session-8_scan-5", "session-4_scan-7"]
REPO_ROOT = Path(__file__).resolve().parents[2]
ENCODER_TITLE = b"MapBatches(ShardEncoder)"


def _local_api(berg_dir, videos: np.ndarray, scan: str) -> list[np.ndarray]:
    from berg_ray.checkpoint.release import load_model
    from berg_ray.inference import encode_videos

    return encode_videos(load_model(berg_dir, [scan]), videos, [scan] * len(videos))


def _rows(table) -> dict[tuple[str, str], np.ndarray]:
    keys = list(zip(table.column("stimulus_id").to_pylist(), table.column("train_session").to_pylist()))
    assert len(keys) == len(set(keys)), "a (stimulus, scan) pair is present twice"
    return {key: np.asarray(value, np.float32) for key, value in zip(keys, table.column("responses").to_pylist())}


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="berg-ray")
    add_sweep_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_s3_sweep_matches_local_api_and_reruns_idempotently(ray_cluster, s3_env, fixture_berg_dir, fixture_stimuli):
    bucket, client = s3_env.new_bucket(), s3_env.client()
    for index, video in enumerate(fixture_stimuli):
        client.put_object(Bucket=bucket, Key=f"stimuli/npy/video{index}.npy", Body=npy_bytes(video))
    clip = fixture_stimuli[1, :8]
    client.put_object(Bucket=bucket, Key="stimuli/clips/clip.mp4", Body=mp4_bytes(clip))
    client.put_object(Bucket=bucket, Key="stimuli/broken.npy", Body=b"\x93NUMPY corrupt")
    options = dict(berg_dir=str(fixture_berg_dir), input=f"s3://{bucket}/stimuli/", output=f"s3://{bucket}/sweep",
                   sessions=SCANS, batch_size=2, show_progress=False)
    result = run(**options)
    assert not result.ok and [e["stimulus_id"] for e in result.errors] == ["broken"]
    assert result.files_written == 6 and result.frame_scans == 2 * (3 * 36 + 8)

    fs = s3_env.arrow_fs()  # read back with plain pyarrow: no berg_ray, no Ray
    rows = _rows(pq.read_table(f"{bucket}/sweep", filesystem=fs))
    assert len(rows) == 4 * 2
    for scan in SCANS:
        for index, expected in enumerate(_local_api(fixture_berg_dir, fixture_stimuli, scan)):
            np.testing.assert_allclose(rows[(f"npy/video{index}", scan)], expected, rtol=1e-6, atol=1e-6)
        units = pq.read_table(f"{bucket}/sweep/_units/{scan}.parquet", filesystem=fs)
        assert rows[("clips/clip", scan)].shape == (8, units.num_rows)
    decoded = decode_video("clip.mp4", client.get_object(Bucket=bucket, Key="stimuli/clips/clip.mp4")["Body"].read())
    assert np.abs(decoded.astype(int) - clip).max() <= 1
    np.testing.assert_allclose(rows[("clips/clip", SCANS[1])], _local_api(fixture_berg_dir, decoded[None],
                                                                          SCANS[1])[0], rtol=1e-6, atol=1e-6)
    errors = pq.read_table(f"{bucket}/sweep/_errors/errors.parquet", filesystem=fs).to_pylist()
    assert errors[0]["stimulus_id"] == "broken" and "broken.npy" in errors[0]["input"]

    argv = ["sweep", "--berg-dir", str(fixture_berg_dir), "--input", options["input"], "--out", options["output"],
            "--sessions", ",".join(SCANS), "--batch-size", "2", "--quiet"]
    assert _cli(argv) == 1  # the same command again: the broken input still fails, nothing else is recomputed
    again = pq.read_table(f"{bucket}/sweep", filesystem=fs)
    assert again.num_rows == 8 and len(_rows(again)) == 8
    listed = client.list_objects_v2(Bucket=bucket, Prefix="sweep/part-")["Contents"]
    assert len(listed) == 6


def _write_inputs(directory: Path, stimuli: np.ndarray, n: int, frames: int) -> np.ndarray:
    directory.mkdir(parents=True)
    videos = np.stack([stimuli[i % len(stimuli), (i // len(stimuli)) * frames:][:frames] for i in range(n)])
    for index, video in enumerate(videos):
        np.save(directory / f"clip{index:02d}.npy", video)
    return videos


def _parts(directory: Path) -> list[Path]:
    return sorted(directory.glob("part-*.parquet")) if directory.is_dir() else []


def _wait_for_parts(directory: Path, count: int, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while len(_parts(directory)) < count:
        assert time.monotonic() < deadline, "no output file appeared"
        time.sleep(0.2)


def _encoder_pids() -> set[int]:
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if ENCODER_TITLE in (entry / "cmdline").read_bytes():
                    pids.add(int(entry.name))
            except OSError:
                continue
    return pids


def test_local_sweep_kill_driver_then_resume(ray_cluster, fixture_berg_dir, fixture_stimuli, tmp_path):
    scan = SCANS[1]
    videos = _write_inputs(tmp_path / "in", fixture_stimuli, n=6, frames=8)
    out = tmp_path / "out"
    options = dict(berg_dir=str(fixture_berg_dir), input=str(tmp_path / "in"), output=str(out), sessions=[scan],
                   batch_size=2, show_progress=False, lease_ttl_s=5.0)
    script = f"from berg_ray.sweep import run; run(**{options!r}, address={ray_cluster.get_runtime_context().gcs_address!r})"
    driver = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT)
    try:
        _wait_for_parts(out, 1)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    _wait_until_gone(_encoder_pids)  # Ray stops a dead driver's actors; a late write would reuse the same name
    killed = _parts(out)
    assert all(pq.read_table(p).num_rows == 2 for p in killed)  # only complete files are visible
    _wait_for_lease_expiry(out, options["lease_ttl_s"])  # the killed driver's lease (test_sweep_hostile_e2e.py)
    result = run(**options)
    assert result.ok and result.files_written == 3 - len(killed)
    rows = _rows(pq.read_table(out))
    assert sorted(rows) == [(f"clip{i:02d}", scan) for i in range(6)]
    for index, expected in enumerate(_local_api(fixture_berg_dir, videos, scan)):
        np.testing.assert_allclose(rows[(f"clip{index:02d}", scan)], expected, rtol=1e-6, atol=1e-6)
    visible = [p.name for p in out.iterdir() if not p.name.startswith("_")]
    assert sorted(visible) == sorted(p.name for p in _parts(out))  # staging files never under visible names


def _wait_for_lease_expiry(out: Path, ttl_s: float) -> None:
    lease = out / "_lease.json"
    while lease.exists() and time.time() - lease.stat().st_mtime <= ttl_s + 0.5:
        time.sleep(0.2)


def _wait_until_gone(pids_fn, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while pids_fn() and time.monotonic() < deadline:
        time.sleep(0.2)


def test_local_sweep_survives_a_killed_actor(ray_cluster, fixture_berg_dir, fixture_stimuli, tmp_path):
    import threading

    scan = SCANS[1]
    _write_inputs(tmp_path / "in", fixture_stimuli, n=6, frames=8)
    out = tmp_path / "out"
    options = dict(berg_dir=str(fixture_berg_dir), input=str(tmp_path / "in"), output=str(out), sessions=[scan],
                   batch_size=2, reduce="mean", skip_frames=2, show_progress=False)
    killed: list[int] = []

    def kill_first_encoder() -> None:
        _wait_for_parts(out, 1)
        for pid in _encoder_pids():
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    killer = threading.Thread(target=kill_first_encoder, daemon=True)
    killer.start()
    try:
        result = run(**options)
    except Exception:  # Ray Data restarts the actor and retries; should a run fail, the re-run must complete
        result = None
    killer.join(timeout=300)
    assert killed, "the encoder actor was not found"
    if result is None or not result.ok:
        result = run(**options)
    assert result.ok
    table = pq.read_table(out)
    rows = _rows(table)
    assert sorted(rows) == [(f"clip{i:02d}", scan) for i in range(6)]
    assert set(table.column("n_frames").to_pylist()) == {6} and all(v.ndim == 1 for v in rows.values())


def test_run_returns_quietly_and_the_cli_prints_the_summary_once(ray_cluster, fixture_berg_dir, fixture_stimuli,
                                                                  tmp_path, capsys):
    """A library call prints nothing unless asked (the README's print(result.summary()) prints it once)."""
    _write_inputs(tmp_path / "in", fixture_stimuli, n=1, frames=4)
    options = dict(berg_dir=str(fixture_berg_dir), input=str(tmp_path / "in"), output=str(tmp_path / "out"),
                   sessions=[SCANS[1]])
    result = run(**options, show_progress=True)
    assert result.ok and result.files_written == 1
    assert capsys.readouterr().out == ""
    argv = ["sweep", "--berg-dir", options["berg_dir"], "--input", options["input"], "--out", options["output"],
            "--sessions", SCANS[1]]
    assert _cli(argv) == 0  # a re-run: everything is already written
    printed = capsys.readouterr().out
    assert printed.count(f"sweep -> {result.output}") == 1 and "1 already complete" in printed
    assert _cli([*argv, "--quiet"]) == 0 and capsys.readouterr().out == ""
