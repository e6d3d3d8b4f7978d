"""Shared helpers of the model tests: the fixture's network built from its release files, and the Triton
interpreter cases run in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from berg_ray.config import RELEASE_SUBDIR, WEIGHTS_SUBDIR
from berg_ray.model.network import EncodingModel

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURE_SCANS = ("session-8_scan-5", "session-4_scan-7")


def fixture_network(berg_dir: Path, scans: tuple[str, ...] = FIXTURE_SCANS) -> EncodingModel:
    """The EncodingModel of the fixture release's core and ``scans``, built straight from its parameter files."""
    weights = berg_dir / RELEASE_SUBDIR / WEIGHTS_SUBDIR
    core_params = torch.load(weights / "params_core.pt", weights_only=True)
    scan_params = {sid: torch.load(weights / f"params_{sid[8]}_{sid[-1]}.pt", weights_only=True) for sid in scans}
    return EncodingModel(core_params, scan_params)


def run_interpreter_cases(module: str, *args: str, timeout: float = 600) -> dict:
    """Run ``python -m tests.model.<module> ARGS`` under Triton's interpreter and return its last stdout line as
    JSON. TRITON_INTERPRET must be set before a kernel module is imported and must not leak into other tests, so
    the cases run in their own process. Skips the test when triton is not installed."""
    pytest.importorskip("triton", reason="triton is not installed (the test extra installs it)")
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-m", f"tests.model.{module}", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
