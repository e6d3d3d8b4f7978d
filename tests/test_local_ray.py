"""A command's local Ray cluster ends with the command: SIGTERM of ``berg-ray serve`` stops it like SIGINT, and
SIGKILL of a driver that uses ``ray_session`` leaves no Ray daemon behind (issue 8, item 3).

Ray's daemons rename themselves (``ray::DashboardAgent``), so processes are matched by their Ray session
directory (command line or open files under ``/tmp/ray/session_*``), never by the venv path.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from berg_ray.cluster.local import session_pids
from berg_ray.serve.cli import free_port

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parents[1]
SESSION = re.compile(r"(/[^\s\x00]*/session_\d{4}-\d\d-\d\d_[\d_-]+)")
GONE_WITHIN_S = 20.0  # after a SIGKILLed owner: the reaper's SIGTERM grace + SIGKILL, on a loaded machine


def _names(pids: list[int]) -> set[str]:
    names = set()
    for pid in pids:
        try:
            names.add(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\x00")[0].decode(errors="replace"))
        except OSError:
            pass
    return names


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    return env


def _wait_for_line(process: subprocess.Popen, pattern: str, timeout_s: float) -> str:
    deadline, seen = time.monotonic() + timeout_s, []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        seen.append(line)
        if re.search(pattern, line):
            return line
    process.kill()
    raise AssertionError(f"{pattern!r} never printed; output:\n{''.join(seen)[-3000:]}")


def _gone_within(session_dir: str, seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := session_pids(session_dir)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def test_sigterm_stops_serve_like_sigint(fixture_berg_dir, tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "berg_ray.cli", "serve", "--berg-dir", str(fixture_berg_dir), "--sessions",
         "session-8_scan-5", "--port", str(free_port()), "--config", str(REPO_ROOT / "deployments/local-cpu.yaml")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(), cwd=tmp_path)
    try:
        _wait_for_line(process, "service ready at", 300)
        session_dir = _session_of(process.pid)
        before = session_pids(session_dir, exclude=frozenset({process.pid}))
        assert {"ray::DashboardAgent", "ray::RuntimeEnvAgent"} <= _names(before), _names(before)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=180)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output[-3000:]
    assert "berg-ray service stopped" in output, output[-3000:]
    left = session_pids(session_dir)
    assert not left, f"still running after exit: {_names(left)}"


def test_sigkill_of_a_driver_leaves_no_ray_process(tmp_path):
    script = textwrap.dedent("""
        import time, ray
        from berg_ray.cluster.local import ray_session
        with ray_session(include_dashboard=False, num_cpus=1):
            print("session", ray._private.worker._global_node.get_session_dir_path(), flush=True)
            time.sleep(600)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=_env(), cwd=tmp_path)
    try:
        session_dir = _wait_for_line(process, r"^session /", 300).split()[1]
        before = session_pids(session_dir, exclude=frozenset({process.pid}))
        assert "ray::DashboardAgent" in _names(before) and len(before) >= 3, _names(before)
        process.kill()
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    left = _gone_within(session_dir, GONE_WITHIN_S)
    assert not left, f"still running {GONE_WITHIN_S} s after SIGKILL of the driver: {_names(left)}"


def _session_of(pid: int) -> str:
    """The Ray session directory of the cluster a process started (read from its children's command lines)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and (match := SESSION.search(cmdline)):
            return match.group(1)
    raise AssertionError(f"no child of {pid} names a Ray session directory")
