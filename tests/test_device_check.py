"""benchmarks/device_check.py keeps working: the whole check at its tiny CPU sizes, every section reported, no
section failing, and float32 within the fidelity goal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # the whole device check, in a subprocess
def test_device_check_runs_on_cpu(tmp_path):
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / "device_check.py"), "--device", "cpu",
               "--out", str(tmp_path), "--throughput-budget-s", "100000"]  # no skipping on a slow CI box
    result = subprocess.run(command, capture_output=True, text=True, timeout=1200, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in (tmp_path / "device_check.jsonl").read_text().splitlines()]
    assert [r for r in records if "error" in r] == []
    sections = {r["section"] for r in records}
    assert sections == {"start", "fidelity", "agreement", "throughput", "profile", "fanout", "cudnn_autotune", "done"}
    fidelity = [r for r in records if r["section"] == "fidelity"]
    assert len(fidelity) == 2 and all(r["max_rel_error_batched"] <= 1e-5 and r["max_rel_error_single"] <= 1e-5
                                      for r in fidelity)
    agreement = [r for r in records if r["section"] == "agreement"]
    assert {r["precision"] for r in agreement} == {"bfloat16"} and all(r["unit_corr_median"] >= 0.999
                                                                       for r in agreement)
    throughput = [r for r in records if r["section"] == "throughput"]
    assert {(r["precision"], r["batch"]) for r in throughput} == {(p, b) for p in ("float32", "bfloat16")
                                                                  for b in (1, 2)}
    assert all(r["fps_best"] > 0 for r in throughput)
    assert {r["what"] for r in records if r["section"] == "profile"} == {"time_shares", "ops"}
    assert (tmp_path / "profile.txt").read_text().count("aten::") > 5
    autotune = [r for r in records if r["section"] == "cudnn_autotune"]
    assert {r["precision"] for r in autotune} == {"float32", "bfloat16"}
    assert all(r["fps_autotune"] > 0 and r["max_rel_difference"] < 1e-5 for r in autotune if r["precision"] == "float32")
    assert all(r["machine"]["cores"] >= 1 for r in records)
