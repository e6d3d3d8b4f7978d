"""The `berg-ray` command: encode, demo-release, and one-line errors with exit status 2."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from berg_ray import BERG
from berg_ray.cli import main
from berg_ray.config import MODEL_ID


def test_encode_writes_the_same_responses_as_the_api(demo_berg_dir, tmp_path):
    video = np.random.default_rng(2).integers(0, 256, (3, 144, 256), dtype=np.uint8)
    np.save(tmp_path / "video.npy", video)
    code = main(["encode", "--berg-dir", str(demo_berg_dir), "--session", "session-4_scan-7", "--input",
                 str(tmp_path / "video.npy"), "--output", str(tmp_path / "out" / "r.npy"), "--roi", "V1",
                 "--roi", "LM", "--device", "cpu"])
    assert code == 0
    berg = BERG(demo_berg_dir)
    model = berg.get_encoding_model(MODEL_ID, train_session="session-4_scan-7", selection={"roi": ["V1", "LM"]},
                                    device="cpu")
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "r.npy"), berg.encode(model, video))
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["r.npy"]  # no temp file left behind


def test_demo_release_writes_requested_scans(tmp_path):
    code = main(["demo-release", "--out", str(tmp_path / "rel"), "--sessions", "session9_scan6", "--units", "7"])
    assert code == 0
    berg = BERG(tmp_path / "rel")
    assert berg.get_encoding_model(MODEL_ID, train_session="session-9_scan-6", device="cpu").n_units == 7


@pytest.mark.parametrize("args, message", [
    (["encode", "--berg-dir", "{rel}", "--session", "session-1_scan-1", "--input", "{video}", "--output", "{out}"],
     "error: train_session 'session-1_scan-1' is not a released scan"),
    (["encode", "--berg-dir", "{rel}", "--session", "session-8_scan-5", "--input", "{missing}", "--output",
      "{out}"], "error: input"),
    (["encode", "--berg-dir", "{rel}", "--session", "session-8_scan-5", "--input", "{bad}", "--output", "{out}"],
     "error: stimulus frames are 10x10"),
    (["demo-release", "--out", "{out}", "--units", "many"], "error: --units 'many'"),
    (["serve", "--berg-dir", "{missing}"], "error: berg_dir"),  # before Ray starts: no Ray log lines
])
def test_errors_print_one_line_and_exit_2(demo_berg_dir, tmp_path, args, message):
    np.save(tmp_path / "video.npy", np.zeros((2, 144, 256), np.uint8))
    np.save(tmp_path / "bad.npy", np.zeros((2, 10, 10), np.uint8))
    paths = {"rel": demo_berg_dir, "video": tmp_path / "video.npy", "out": tmp_path / "o.npy",
             "missing": tmp_path / "nope.npy", "bad": tmp_path / "bad.npy"}
    argv = [a.format(**paths) for a in args]
    result = subprocess.run([sys.executable, "-m", "berg_ray.cli", *argv], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().startswith(message) and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr and not (tmp_path / "o.npy").exists()
