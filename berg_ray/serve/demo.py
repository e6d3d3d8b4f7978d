"""The service part of ``berg-ray demo``: serve the demo release on 127.0.0.1 and send it one request."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from berg_ray.checkpoint.release import available_scans, load_model
from berg_ray.config import BatchingConfig, CoreArgs, ServeArgs
from berg_ray.inference import encode_videos
from berg_ray.serve.cli import free_port, running_service
from berg_ray.serve.client import BergClient
from berg_ray.runtime.threads import available_cpus


def run_serve_demo(berg_dir: Path, videos: np.ndarray, verbose: bool = False) -> None:
    """Deploy the service on ``berg_dir``, encode ``videos[0]`` over HTTP and check it against the local API.

    Args:
        berg_dir: a (demo) release.
        videos: uint8 (B, T, 144, 256); only the first video is sent.
        verbose: also show Ray's own logs on the console.
    """
    scan_id = str(available_scans(berg_dir)[0])
    args = ServeArgs(berg_dir=str(berg_dir), sessions=[scan_id], batching=BatchingConfig(chunk_frames=16),
                     core=CoreArgs(num_cpus=1, torch_threads=available_cpus()))
    start = time.perf_counter()
    with running_service(args, "127.0.0.1", free_port(), verbose=verbose) as url:
        client = BergClient(url)
        client.health()
        ready = time.perf_counter()
        served = client.encode(scan_id, videos[0])
        took = time.perf_counter() - ready
    local = encode_videos(load_model(berg_dir, [scan_id]), videos[:1], [scan_id])[0]
    error = float(np.max(np.abs(served - local) / np.abs(local)))
    print(f"serve: deployed at {url} in {ready - start:.1f} s; POST /v1/encode?train_session={scan_id} "
          f"-> {served.shape} float32 in {took:.2f} s ({videos.shape[1] / took:.1f} frames/s); "
          f"max relative difference to the local API {error:.1e}")
