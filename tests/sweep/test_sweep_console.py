"""What a sweep shows on the console (issue 18): progress in videos and frames, and none of Ray's native noise.

One real ``berg-ray sweep`` with its own local Ray cluster, as a user runs it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest


@pytest.mark.slow  # a whole `berg-ray sweep` (its own local Ray cluster) in a subprocess
def test_cli_sweep_console_counts_videos_and_hides_ray_noise(tmp_path, fixture_berg_dir):
    (tmp_path / "in").mkdir()
    for i in range(2):
        np.save(tmp_path / "in" / f"clip_{i}.npy", np.full((8, 144, 256), 100 + i, np.uint8))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    done = subprocess.run([sys.executable, "-m", "berg_ray.cli", "sweep", "--berg-dir", str(fixture_berg_dir),
                           "--input", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                           "--sessions", "session-4_scan-7", "--device", "cpu", "--batch-size", "1"],
                          capture_output=True, timeout=600, cwd=tmp_path, env=env)
    stderr = done.stderr.decode()
    assert done.returncode == 0, stderr[-3000:]
    assert "core_worker.cc" not in stderr and "max_restarts" not in stderr, stderr[-3000:]
    bars = re.findall(r"sweep: +(\d+)%\|[^|]*\| (\d+)/(\d+) \[[^\]]*video[^\]]*\]", stderr)
    assert bars and bars[-1] == ("100", "2", "2"), stderr[-3000:]
    assert "16 frames" in stderr.splitlines()[-1] or re.search(r"\b16 frames\b", stderr), stderr[-3000:]
