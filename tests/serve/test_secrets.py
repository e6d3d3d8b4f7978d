"""The bearer token of ``berg-ray serve`` reaches only the process that builds the app (issue 16, finding 6).

``ray.init`` starts the local cluster as children of the driver, so a variable in the driver's environment is in
the environment of the raylet and of every worker it starts: any task on the cluster could read the token. Here a
real ``berg-ray serve`` with ``--token-env`` runs in a subprocess; no process of its Ray session and no task of
another driver sees the token, and authentication still works.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from berg_ray.cluster.local import session_pids
from berg_ray.serve.cli import free_port
from tests.test_local_ray import REPO_ROOT, _env, _session_of, _wait_for_line

pytestmark = pytest.mark.slow
TOKEN_ENV, TOKEN = "BERG_RAY_SECRET_TEST_TOKEN", "tok-3f9c1a7e-never-in-a-worker"
READ_ENV_TASK = textwrap.dedent(f"""
    import os, ray
    ray.init(log_to_driver=False)

    @ray.remote(num_cpus=0)
    def read_env():
        return os.environ.get({TOKEN_ENV!r})

    @ray.remote(num_cpus=0)
    class Reader:
        def read(self):
            return os.environ.get({TOKEN_ENV!r})

    print("task", ray.get(read_env.remote()), "actor", ray.get(Reader.remote().read.remote()), flush=True)
""")


def _status(url: str, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url + "/v1/sessions", headers=headers), timeout=60) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _environ_holds(pid: int, value: str) -> bool:
    try:
        return value.encode() in Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # ended meanwhile
        return False


def test_the_token_reaches_no_ray_worker_and_auth_still_works(fixture_berg_dir, tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "berg_ray.cli", "serve", "--berg-dir", str(fixture_berg_dir), "--sessions",
         "session-8_scan-5", "--port", str(port), "--token-env", TOKEN_ENV,
         "--config", str(REPO_ROOT / "deployments/local-cpu.yaml")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**_env(), TOKEN_ENV: TOKEN}, cwd=tmp_path)
    try:
        _wait_for_line(process, "service ready at", 300)
        join = _wait_for_line(process, "Ray drivers join its cluster with: export ", 30).split("export ", 1)[1]
        url = f"http://127.0.0.1:{port}"
        assert _status(url, None) == 401 and _status(url, "wrong") == 401 and _status(url, TOKEN) == 200
        session_dir = _session_of(process.pid)
        pids = session_pids(session_dir, exclude=frozenset({process.pid}))
        assert len(pids) >= 4  # GCS, raylet, agents, Serve's controller, proxy and replicas
        holding = [pid for pid in pids if _environ_holds(pid, TOKEN)]
        assert not holding, f"processes of the Ray session hold the token: {holding}"
        driver_env = {k: v for k, v in _env().items() if k != TOKEN_ENV}
        driver_env.update(item.split("=", 1) for item in join.split())
        done = subprocess.run([sys.executable, "-c", READ_ENV_TASK], capture_output=True, text=True, timeout=300,
                              env=driver_env, cwd=tmp_path)
        assert "task None actor None" in done.stdout, (done.stdout + done.stderr)[-3000:]
        assert _status(url, TOKEN) == 200
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.communicate(timeout=180)
            except subprocess.TimeoutExpired:
                process.kill()
