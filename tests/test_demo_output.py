"""`berg-ray demo` as a person reads it: only the demo's own lines (Ray's logs go to its log files), and a re-run of
a finished sweep says so without starting Ray."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parents[1]
# Ray's console formats: "2026-01-01 12:00:00,000\tINFO worker.py:1 -- ...", "INFO 2026-... serve 123 -- ...",
# worker output forwarded to the driver "(ServeController pid=1) ...", and raylet/GCS messages.
RAY_LOG_LINE = re.compile(r"\b(INFO|WARNING|DEBUG)\b|\(\w[\w:]* pid=\d+\)|\braylet\b|\bgcs_server\b")
RERUN_SWEEP = ("import sys; from pathlib import Path; from berg_ray.sweep.demo import run_sweep_demo; "
               "run_sweep_demo(Path(sys.argv[1]), Path(sys.argv[2]))")


def _run(argv: list[str], cwd: Path, **env_vars: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), **env_vars)
    env.pop("RAY_ADDRESS", None)
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=cwd, env=env, timeout=900)


def test_demo_prints_only_its_own_lines_and_a_finished_sweep_reruns_without_ray(tmp_path):
    work = tmp_path / "demo"
    first = _run(["-m", "berg_ray.cli", "demo", "--out", str(work)], tmp_path)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
    noise = [line for line in (first.stdout + first.stderr).splitlines() if RAY_LOG_LINE.search(line)]
    assert not noise, "\n".join(noise[:20])
    assert "demo finished" in first.stdout and "[4/4]" in first.stdout

    ray_tmp = Path(tempfile.mkdtemp(prefix="br-"))  # the re-run's own Ray temp root: empty if Ray never started
    try:
        again = _run(["-c", RERUN_SWEEP, str(work / "berg"), str(work)], tmp_path, RAY_TMPDIR=str(ray_tmp))
        assert again.returncode == 0, again.stderr[-3000:]
        assert "output already complete" in again.stdout and "frames/s" not in again.stdout, again.stdout
        assert not list(ray_tmp.rglob("session_*")), "the re-run started Ray"  # the done set is read first
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
