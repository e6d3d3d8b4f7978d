"""Resident memory of the Serve replicas once every head has loaded its readout (RESULTS.md, "Serve").

    python benchmarks/head_rss.py --berg-dir BERG_DIR --sessions session-8_scan-5

Deploys the service on a local Ray cluster (CPU), waits for /healthz (which makes every readout head load its
scan), then prints VmRSS and VmHWM (peak) of each replica process of the app.
"""

from __future__ import annotations

import argparse
import json
import urllib.request

import ray
from ray import serve

from berg_ray.config import SERVE_APP_NAME
from berg_ray.cluster.local import session_pids
from berg_ray.serve.app import build_app
from berg_ray.serve.cli import free_port


def replica_memory_mb() -> dict[str, tuple[float, float]]:
    """{process title: (VmRSS, VmHWM) in MB} of every Serve replica process of the app in this Ray session."""
    found = {}
    for entry in map(str, session_pids(ray._private.worker._global_node.get_session_dir_path())):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as file:
                title = file.read().split(b"\x00")[0].decode(errors="replace")
            with open(f"/proc/{entry}/status") as file:
                status = dict(line.split(":", 1) for line in file if ":" in line)
        except OSError:
            continue
        if title.startswith(f"ray::ServeReplica:{SERVE_APP_NAME}:"):
            found[f"{title} (pid {entry})"] = tuple(int(status[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM"))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--berg-dir", required=True)
    parser.add_argument("--sessions", default="session-8_scan-5")
    ns = parser.parse_args()
    ray.init(num_cpus=4, include_dashboard=False)
    try:
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app({"berg_dir": ns.berg_dir, "sessions": ns.sessions.split(","),
                             "core": {"num_gpus": 0, "torch_threads": 1}}), name=SERVE_APP_NAME, route_prefix="/")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=600) as response:
            print("healthz", json.loads(response.read()))
        for title, (rss, peak) in sorted(replica_memory_mb().items()):
            print(f"{title}: RSS {rss:.0f} MB, peak {peak:.0f} MB")
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
