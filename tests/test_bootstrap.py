"""The setup script behind the Quick start says what it is doing (issue 18: it was silent for minutes)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # runs the bootstrap script (pip) in a subprocess
def test_bootstrap_prints_each_step_and_pips_progress():
    """Re-running it on the existing .venv is the fast path (berg_ray reinstalled in place, same files)."""
    done = subprocess.run(["bash", "scripts/bootstrap.sh", "test"], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert any(line.startswith("berg_ray setup: installing berg_ray[test] and its dependencies") for line in lines)
    assert any(line.strip().startswith("Successfully installed berg_ray") for line in lines), lines
    assert lines[-1].startswith("berg_ray setup: done: berg_ray ") and ", torch " in lines[-1], lines[-1]
    assert not any("WARNING" in line for line in lines)  # pip's per-index chatter stays out
