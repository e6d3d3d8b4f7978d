"""Frame sizes from headers before Ray starts, and a re-run with --resize after frame-size errors (issue 18,
"Late failures"): a sweep over only wrong-sized videos exits 2 in seconds, a mixed one lists the wrong-sized
inputs as errors without sending them to Ray, and a re-run with --resize into the same output computes just them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from berg_ray.storage import open_store
from berg_ray.sweep import layout, run
from berg_ray.sweep.preflight import header_frame_size
from tests.sweep.helpers import mp4_bytes, npy_bytes

SCAN = "session-8_scan-5"


def _grey(frames: int, height: int, width: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (frames, height, width), dtype=np.uint8)


def test_frame_sizes_come_from_headers(tmp_path):
    (tmp_path / "wide.mp4").write_bytes(mp4_bytes(_grey(2, 360, 640)))
    (tmp_path / "small.npy").write_bytes(npy_bytes(_grey(2, 10, 12))[:200])  # the header alone: data cut off
    np.savez(tmp_path / "half.npz", stimulus=_grey(2, 72, 128))
    np.save(tmp_path / "ok.npy", _grey(2, 144, 256))
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    store = open_store(str(tmp_path))
    assert header_frame_size(store, "wide.mp4") == (360, 640)
    assert header_frame_size(store, "small.npy") == (10, 12)
    assert header_frame_size(store, "half.npz") == (72, 128)
    assert header_frame_size(store, "ok.npy") == (144, 256)
    assert header_frame_size(store, "junk.mp4") is None  # left to the decoder, which names the problem


@pytest.mark.slow  # runs a whole Python process (scripts/test.sh --quick leaves it out)
def test_a_sweep_of_only_wrong_sized_videos_is_refused_before_ray_starts(tmp_path, fixture_berg_dir):
    """Before: the frame size was reported after ~27 s of Ray start-up and compute, as a per-file error."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "wide.mp4").write_bytes(mp4_bytes(_grey(2, 360, 640)))
    ray_tmp = Path(tempfile.mkdtemp(prefix="br-"))  # this command's own Ray temp root (short: socket paths)
    try:
        done = subprocess.run([sys.executable, "-m", "berg_ray.cli", "sweep", "--berg-dir", str(fixture_berg_dir),
                               "--input", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--sessions",
                               SCAN, "--device", "cpu"], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                              env={**os.environ, "RAY_TMPDIR": str(ray_tmp)})
        assert done.returncode == 2 and done.stderr.startswith("error: "), done.stderr[-2000:]
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr[-2000:]
        assert "wide.mp4: frames are 360x640 pixels" in done.stderr and "--resize" in done.stderr, done.stderr
        assert not list(ray_tmp.rglob("session_*")), "a Ray session was started before the frame-size check"
        assert not (tmp_path / "out").exists()
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.mark.slow
def test_a_rerun_with_resize_computes_just_the_wrong_sized_inputs(ray_cluster, fixture_berg_dir, tmp_path):
    """Before: the re-run with --resize was refused (resize was one of the output's content options)."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a_wide.mp4").write_bytes(mp4_bytes(_grey(3, 360, 640)))
    np.save(tmp_path / "in" / "b_ok.npy", _grey(3, 144, 256))
    out = tmp_path / "out"
    options = dict(berg_dir=str(fixture_berg_dir), input=str(tmp_path / "in"), output=str(out), sessions=[SCAN],
                   batch_size=2, show_progress=False)
    first = run(**options)
    assert [(e["stimulus_id"], e["error_type"]) for e in first.errors] == [("a_wide", "InvalidVideoError")]
    assert "360x640" in first.errors[0]["error"] and "--resize" in first.errors[0]["error"]
    assert first.files_written == 1 and first.frames == 3  # the wide one was never decoded by a Ray worker
    parts = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}
    assert "resize" not in json.loads((out / layout.MANIFEST_FILE).read_text())

    second = run(**options, resize=True)
    assert second.ok and second.files_written == 1 and second.stimuli_done_before == 1
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.parquet") if p.name in parts} == parts
    table = pq.read_table(out)
    assert sorted(table.column("stimulus_id").to_pylist()) == ["a_wide", "b_ok"]  # each exactly once
    assert run(**options, resize=True).complete_before  # and nothing is computed again
    from berg_ray.experiments.plot_cli import read_response_plot

    plot = read_response_plot(str(out), "a_wide", SCAN, stimuli=str(tmp_path / "in"))  # frames as the sweep saw
    assert plot.frames is not None and plot.frames.shape == (3, 144, 256)


def test_manifests_that_record_resize_are_read_without_it(tmp_path):
    """Outputs of earlier versions recorded resize in _sweep.json; it does not change any row."""
    content = layout.content_options("none", 0, "float32")
    (tmp_path / layout.MANIFEST_FILE).write_text(json.dumps({**content, "resize": False}))
    assert layout.check_manifest(open_store(str(tmp_path)), content) is False
