"""Benchmark of the Ray Serve service against the in-process model, on one machine, in one run.

    python benchmarks/bench_serve.py                  # closed-loop load, K in {1, 4, 16}, plus transfer costs
    python benchmarks/bench_serve.py --model-only     # no Ray: core batching gain of the model (GPU or CPU)

The release is generated (random weights, released unit counts) so that readout and response sizes are real.
Then the app is redeployed with one readout deployment per scan (heads: per_scan) for the memory, start-up and
head round-trip comparison. Prints one JSON document; the numbers go into benchmarks/RESULTS.md ("## Serve (bench_serve.py)").
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from berg_ray.checkpoint.demo import demo_videos, write_demo_release
from berg_ray.checkpoint.release import load_model
from berg_ray.inference import encode_videos

SCANS = ["session-8_scan-5", "session-9_scan-6"]  # the largest (9,941 units) and smallest (5,130) released scans


def in_process_fps(model, videos: np.ndarray, batch: int, repeats: int) -> float:
    """Frames/s of the local API on ``batch`` videos at once (scans alternate)."""
    scans = [SCANS[i % 2] for i in range(batch)]
    encode_videos(model, videos[:batch, :4], scans)  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        encode_videos(model, videos[:batch], scans)
    return repeats * batch * videos.shape[1] / (time.perf_counter() - start)


def core_batching_gain(model, frames: int, batches: list[int]) -> dict[int, float]:
    """Frames/s of forward_features alone (front ends + core) per batch size: the gain the core's batching buys."""
    result = {}
    for batch in batches:
        chunk = torch.from_numpy(demo_videos(batch, frames, seed=1)).to(model.device)
        scans = [SCANS[i % 2] for i in range(batch)]
        with torch.inference_mode():
            model.forward_features(chunk[:, :2], scans)  # warm-up
            _sync(model.device)
            start = time.perf_counter()
            model.forward_features(chunk, scans)
            _sync(model.device)
        result[batch] = batch * frames / (time.perf_counter() - start)
    return result


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def closed_loop(client, videos: np.ndarray, clients: int, requests_per_client: int) -> dict[str, float]:
    """K clients each send requests back to back; latency percentiles and throughput over the whole run."""
    latencies: list[float] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        for r in range(requests_per_client):
            video = videos[(k + r) % len(videos)]
            start = time.perf_counter()
            client.encode(SCANS[(k + r) % 2], video)
            with lock:
                latencies.append(time.perf_counter() - start)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
    n = clients * requests_per_client
    return {"clients": clients, "requests": n, "requests_per_s": n / wall, "frames_per_s": n * videos.shape[1] / wall,
            "p50_s": p50, "p95_s": p95, "p99_s": p99, "p99_over_p50": p99 / p50}


def transfer_costs(handle_of, frames: int, repeats: int = 5) -> dict[str, dict[str, float]]:
    """Round trip of one video's features to a readout head (object store) vs the in-process readout math."""
    from berg_ray.config import FEATURE_HEIGHT, FEATURE_WIDTH, N_FEATURES

    result = {}
    for dtype in ("float32", "float16"):
        features = np.random.default_rng(0).standard_normal(
            (frames, N_FEATURES, FEATURE_HEIGHT, FEATURE_WIDTH)).astype(dtype)
        head = handle_of(SCANS[0])
        head.remote(features, None).result()  # warm-up (loads the readout)
        start = time.perf_counter()
        for _ in range(repeats):
            head.remote(features, None).result()
        result[dtype] = {"bytes_per_frame": features[0].nbytes,
                         "head_round_trip_ms_per_frame": 1e3 * (time.perf_counter() - start) / repeats / frames}
    return result


def readout_in_process_ms(model, frames: int) -> float:
    features = torch.randn(1, frames, 512, 16, 24)
    with torch.inference_mode():
        model.forward_readout(features, SCANS[0])
        start = time.perf_counter()
        model.forward_readout(features, SCANS[0])
    return 1e3 * (time.perf_counter() - start) / frames


def replica_memory_mb() -> dict[str, float]:
    """Resident memory (MB) of the Serve replica processes on this node, summed per deployment."""
    memory: dict[str, float] = {}
    for proc in Path("/proc").iterdir():
        try:
            title = (proc / "cmdline").read_bytes().split(b"\0")[0].decode()
            status = (proc / "status").read_text()
        except (OSError, UnicodeDecodeError):
            continue
        if title.startswith("ray::ServeReplica:"):
            rss_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
            key = title.split(":")[-1].split()[0]
            memory[key] = memory.get(key, 0.0) + rss_kb / 1024
    return memory


def deploy(args, port_client):
    """Deploy ``args``; returns (client, seconds until /healthz answered)."""
    from ray import serve

    from berg_ray.config import SERVE_APP_NAME
    from berg_ray.serve.app import build_app

    start = time.perf_counter()
    serve.run(build_app(args), name=SERVE_APP_NAME, route_prefix="/")
    port_client.health()
    return time.perf_counter() - start


def head_handle(heads: str):
    from ray import serve

    from berg_ray.config import SERVE_APP_NAME

    def handle_of(scan_id: str):
        name = "ReadoutServer" if heads == "multiplexed" else f"ReadoutServer_{scan_id}"
        return serve.get_deployment_handle(name, SERVE_APP_NAME).options(multiplexed_model_id=scan_id)

    return handle_of


def run_service_benchmark(ns: argparse.Namespace, berg_dir: Path, model) -> dict:
    import ray
    from ray import serve

    from berg_ray.config import SERVE_APP_NAME
    from berg_ray.serve.cli import free_port, read_config, serve_args_from
    from berg_ray.serve.client import BergClient

    args = serve_args_from(read_config(ns.config), str(berg_dir), ",".join(SCANS), None)
    ray.init(num_cpus=ns.ray_cpus, include_dashboard=False)  # logical CPUs: replicas reserve fractions
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    client = BergClient(f"http://127.0.0.1:{port}")
    report: dict = {"deploy_and_ready_s": deploy(args, client), "replica_rss_mb": replica_memory_mb()}
    videos = demo_videos(8, ns.frames, seed=2)
    client.encode(SCANS[0], videos[0, :4])  # warm-up
    report["load"] = []
    for k in ns.clients:
        report["load"].append(closed_loop(client, videos, k, max(ns.requests // k, 2)))
        print(json.dumps(report["load"][-1], default=float), file=sys.stderr, flush=True)
    report["core_stats"] = client.stats()
    report["transfer"] = transfer_costs(head_handle("multiplexed"), ns.frames)
    report["transfer"]["readout_in_process_ms_per_frame"] = readout_in_process_ms(model, ns.frames)
    print(json.dumps(report["transfer"], default=float), file=sys.stderr, flush=True)
    serve.delete(SERVE_APP_NAME)
    per_scan = args.model_copy(update={"heads": "per_scan"})
    report["per_scan_heads"] = {"deploy_and_ready_s": deploy(per_scan, client), "replica_rss_mb": replica_memory_mb(),
                                "transfer": transfer_costs(head_handle("per_scan"), ns.frames)}
    serve.shutdown()
    ray.shutdown()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="deployments/local-cpu.yaml")
    parser.add_argument("--frames", type=int, default=12, help="frames per request video")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--requests", type=int, default=16, help="requests in total per K (at least 2 per client)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8, 16], help="core batch sizes")
    parser.add_argument("--ray-cpus", type=int, default=4, help="logical CPUs of the local Ray cluster")
    parser.add_argument("--model-only", action="store_true", help="no Ray: the core's batching gain only")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of the in-process baseline")
    ns = parser.parse_args()
    if ns.threads:
        torch.set_num_threads(ns.threads)
    with tempfile.TemporaryDirectory() as tmp:
        berg_dir = write_demo_release(tmp, SCANS, n_units=None, seed=0)
        model = load_model(berg_dir, SCANS, device=ns.device)
        report: dict = {"device": str(model.device), "torch_threads": torch.get_num_threads(), "frames": ns.frames}
        report["core_batching_fps"] = core_batching_gain(model, ns.frames, ns.batches)
        print(json.dumps(report, default=float), file=sys.stderr, flush=True)
        if not ns.model_only:
            videos = demo_videos(4, ns.frames, seed=2)
            report["in_process_fps"] = {b: in_process_fps(model, videos, b, 2) for b in (1, 4)}
            print(json.dumps(report, default=float), file=sys.stderr, flush=True)
            report["service"] = run_service_benchmark(ns, berg_dir, model)
            best = max(report["in_process_fps"].values())
            for row in report["service"]["load"]:
                row["served_over_in_process"] = row["frames_per_s"] / best
    print(json.dumps(report, indent=1, default=float))


if __name__ == "__main__":
    main()
