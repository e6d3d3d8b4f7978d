"""Latency of short requests while a long one runs: interleaved cohorts vs lock-step batching, in one run.

    python benchmarks/bench_fairness.py [--long-frames 300 --short-frames 8 --shorts 12 --gap-s 1.0]

One local Ray cluster, the service on the generated demo release (64 units per scan) with the core on the CPU.
For each mode (``batching.interleave`` true, then false, alternating ``--rounds`` times) the app is redeployed,
one long request is sent, and once the core works on it a short request every ``--gap-s`` seconds (open loop,
each on its own thread) until the long one ends or ``--shorts`` were sent. Per mode: p50 / p99 / max of
the short requests' latency and the long request's latency. Prints JSON lines (one per round and mode, then a
summary with the machine); the numbers go into benchmarks/RESULTS.md ("Fair batching").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np

SCAN = "session-8_scan-5"


def post(url: str, body: bytes) -> float:
    start = time.perf_counter()
    request = urllib.request.Request(f"{url}/v1/encode?train_session={SCAN}", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=3600) as response:
        response.read()
    return time.perf_counter() - start


def busy(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/v1/stats", timeout=60) as response:
        return json.loads(response.read())["ongoing_requests"] > 0


def one_round(url: str, long_body: bytes, short_body: bytes, shorts: int, gap_s: float) -> dict:
    """Latencies (s) of short requests sent every ``gap_s`` (open loop, each on its own thread) while the long one
    runs, at most ``shorts``, and of the long one."""
    with ThreadPoolExecutor(shorts + 1) as pool:
        long_future = pool.submit(post, url, long_body)
        while not busy(url):
            time.sleep(0.02)
        futures = []
        while len(futures) < shorts and not long_future.done():
            futures.append(pool.submit(post, url, short_body))
            time.sleep(gap_s)
        return {"short_s": [f.result() for f in futures], "long_s": long_future.result()}


def deploy(berg_dir: str, port: int, interleave: bool, chunk_frames: int, threads: int) -> str:
    from ray import serve

    from berg_ray.config import SERVE_APP_NAME
    from berg_ray.serve.app import build_app

    serve.run(build_app({"berg_dir": berg_dir, "max_frames_per_request": 100_000,
                         "batching": {"interleave": interleave, "chunk_frames": chunk_frames},
                         "core": {"num_gpus": 0, "torch_threads": threads}}),
              name=SERVE_APP_NAME, route_prefix="/")
    return f"http://127.0.0.1:{port}"


def summary(values: list[float]) -> dict:
    array = np.asarray(values)
    return {"n": int(array.size), "p50_s": float(np.percentile(array, 50)), "p99_s": float(np.percentile(array, 99)),
            "max_s": float(array.max())} if array.size else {"n": 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--long-frames", type=int, default=300)
    parser.add_argument("--short-frames", type=int, default=8)
    parser.add_argument("--shorts", type=int, default=12, help="most short requests per round")
    parser.add_argument("--gap-s", type=float, default=1.0)
    parser.add_argument("--chunk-frames", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the core replica")
    parser.add_argument("--rounds", type=int, default=2)
    ns = parser.parse_args()

    import ray
    from ray import serve

    from berg_ray.checkpoint.demo import demo_videos, write_demo_release
    from berg_ray.serve.cli import free_port
    from berg_ray.serve.protocol import encode_npy

    berg_dir = str(write_demo_release(tempfile.mkdtemp(), [SCAN], n_units=64, seed=1))
    long_body = encode_npy(demo_videos(1, ns.long_frames, seed=2)[0])
    short_body = encode_npy(demo_videos(1, ns.short_frames, seed=3)[0])
    ray.init(num_cpus=4, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    results: dict[str, dict[str, list[float]]] = {"interleaved": {"short": [], "long": []},
                                                   "lock-step": {"short": [], "long": []}}
    for round_index in range(ns.rounds):
        for mode, interleave in (("interleaved", True), ("lock-step", False)):
            url = deploy(berg_dir, port, interleave, ns.chunk_frames, ns.threads)
            post(url, short_body)  # warm-up
            measured = one_round(url, long_body, short_body, ns.shorts, ns.gap_s)
            results[mode]["short"] += measured["short_s"]
            results[mode]["long"].append(measured["long_s"])
            print(json.dumps({"round": round_index, "mode": mode, **measured}), flush=True)
    print(json.dumps({"bench": "fairness", "machine": f"{platform.node()} {platform.processor() or platform.machine()}"
                      f" {os.cpu_count()} CPUs", "long_frames": ns.long_frames, "short_frames": ns.short_frames,
                      "chunk_frames": ns.chunk_frames, "threads": ns.threads,
                      **{mode: {"short": summary(r["short"]), "long": summary(r["long"])}
                         for mode, r in results.items()}}), flush=True)
    serve.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    main()
