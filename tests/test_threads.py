"""CPU threading of berg_ray's processes: OpenMP wait policy before torch loads, threads from the CPUs available."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from berg_ray.runtime import threads
from berg_ray.serve.app import build_app

REPO_ROOT = Path(__file__).resolve().parents[1]


def _gomp_spin_count(code: list[str], **env: str) -> int:
    """GOMP_SPINCOUNT the OpenMP runtime of a fresh process running ``code`` reports at load (0 = passive)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}
    environ |= {"OMP_DISPLAY_ENV": "VERBOSE", "PYTHONPATH": str(REPO_ROOT), **env}
    result = subprocess.run([sys.executable, *code], capture_output=True, text=True, env=environ, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    match = re.search(r"GOMP_SPINCOUNT = '(\d+)'", result.stderr)
    assert match, f"the OpenMP runtime printed no environment: {result.stderr[-2000:]}"
    return int(match.group(1))


@pytest.mark.slow  # runs a whole Python process (scripts/test.sh --quick leaves it out)
@pytest.mark.parametrize("code", [["-m", "berg_ray.cli", "encode", "--help"], ["-c", "import berg_ray, torch"]],
                         ids=["cli", "library"])
def test_openmp_threads_sleep_when_idle_in_berg_ray_processes(code):
    assert _gomp_spin_count(["-c", "import torch"]) > 0  # the runtime's own default spins
    assert _gomp_spin_count(code) == 0  # OMP_WAIT_POLICY=passive took effect


@pytest.mark.slow  # runs a whole Python process (scripts/test.sh --quick leaves it out)
def test_a_wait_policy_the_user_set_is_kept():
    assert _gomp_spin_count(["-m", "berg_ray.cli", "encode", "--help"], OMP_WAIT_POLICY="active") > 0
    assert threads.openmp_env_vars({"OMP_WAIT_POLICY": "active"}) == {"OMP_WAIT_POLICY": "active"}
    assert threads.openmp_env_vars({}) == {"OMP_WAIT_POLICY": "passive"}


def test_cgroup_cpu_quota_is_read_from_v2_or_v1(tmp_path):
    v2, quota, period = tmp_path / "cpu.max", tmp_path / "quota", tmp_path / "period"
    v2.write_text("150000 100000\n")
    assert threads.cgroup_cpu_limit(v2, quota, period) == 1.5
    v2.write_text("max 100000\n")
    assert threads.cgroup_cpu_limit(v2, quota, period) is None
    v2.unlink()
    quota.write_text("300000\n")
    period.write_text("100000\n")
    assert threads.cgroup_cpu_limit(v2, quota, period) == 3.0
    quota.write_text("-1\n")
    assert threads.cgroup_cpu_limit(v2, quota, period) is None


def test_threads_follow_affinity_quota_and_ray_reservation(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7})
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: None)
    assert threads.available_cpus() == 8
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: 2.5)
    assert threads.available_cpus() == 3
    assert threads.cpu_threads() == 3
    assert threads.cpu_threads(0.5) == 1 and threads.cpu_threads(2.0) == 2 and threads.cpu_threads(16) == 3


def test_openmp_threads_are_capped_by_a_cgroup_quota_before_torch_loads(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch")  # as if berg_ray were imported first
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: 4.0)
    environ: dict[str, str] = {}
    assert threads.default_openmp_env(environ)
    assert environ == {"OMP_WAIT_POLICY": "passive", "OMP_NUM_THREADS": "4"}
    mine = {"OMP_WAIT_POLICY": "active", "OMP_NUM_THREADS": "2"}
    threads.default_openmp_env(mine)
    assert mine == {"OMP_WAIT_POLICY": "active", "OMP_NUM_THREADS": "2"}


def test_every_serve_replica_gets_the_wait_policy_in_its_runtime_env(fixture_berg_dir):
    app = build_app({"berg_dir": str(fixture_berg_dir), "core": {"num_gpus": 0}, "heads": "per_scan"})
    ingress = app._bound_deployment
    core = ingress.init_args[3]._bound_deployment
    heads = [h._bound_deployment for h in core.init_args[4].values()]
    for deployment in [ingress, core, *heads]:
        assert deployment.ray_actor_options["runtime_env"] == {"env_vars": {"OMP_WAIT_POLICY": "passive"}}
