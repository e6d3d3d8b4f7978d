"""Benchmark of a Ray Data sweep against the in-process model, on one machine, in one run.

    python benchmarks/bench_sweep.py                          # defaults: 12 stimuli x 60 frames, 1 scan
    python benchmarks/bench_sweep.py --stimuli 32 --frames 150 --batch-size 8

Measures, on the same videos and the same generated release (random weights, released unit counts, so response
sizes are real):
- in-process frames/s: ``encode_videos`` on a loaded model, micro-batch by micro-batch (model load excluded);
- sweep frames/s, local dir -> local dir and S3 -> S3 (a SeaweedFS ``weed mini`` on 127.0.0.1 started here):
  end-to-end wall time of ``berg_ray.sweep.run`` (planning, actor start and model load, decoding, encoding,
  Parquet writing; Ray already started), and its ratio to the in-process rate;
- bytes written per frame-unit (Parquet, reduce none) and S3 write throughput (sweep files and a raw 64 MB upload).
Prints one JSON document; the numbers go into benchmarks/RESULTS.md ("## Sweep (bench_sweep.py)").
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from berg_ray.checkpoint.demo import demo_videos, write_demo_release
from berg_ray.checkpoint.release import load_model
from berg_ray.inference import encode_videos
from berg_ray.storage import open_store, resolve_s3_options
from berg_ray.sweep import run

SCAN = "session-8_scan-5"  # the largest released scan (9,941 units)
KEY, SECRET = "bench-key", "bench-secret"


def in_process_fps(berg_dir: Path, videos: np.ndarray, batch: int, chunk_frames: int) -> float:
    """(frame x scan)/s of the local API over the same micro-batches a sweep runs (model already loaded)."""
    model = load_model(berg_dir, [SCAN])
    encode_videos(model, videos[:1, :4], [SCAN])  # warm-up
    start = time.perf_counter()
    for first in range(0, len(videos), batch):
        part = videos[first:first + batch]
        encode_videos(model, part, [SCAN] * len(part), chunk_frames=chunk_frames)
    return videos.shape[0] * videos.shape[1] / (time.perf_counter() - start)


def start_seaweedfs(work: Path) -> tuple[subprocess.Popen, str]:
    """``weed mini`` with credentials on free 127.0.0.1 ports; returns (process, endpoint)."""
    flags = ("s3.port", "s3.port.grpc", "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
             "filer.port", "filer.port.grpc", "admin.port", "admin.port.grpc")
    sockets = [socket.socket() for _ in flags]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = {flag: sock.getsockname()[1] for flag, sock in zip(flags, sockets)}
    for sock in sockets:
        sock.close()
    args = [shutil.which("weed") or "weed", "mini", f"-dir={work}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0"]
    args += [f"-{flag}={port}" for flag, port in ports.items()]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work,
                               env={**os.environ, "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET})
    return process, f"http://127.0.0.1:{ports['s3.port']}"


def s3_client(endpoint: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=KEY,
                        aws_secret_access_key=SECRET)


def wait_ready(endpoint: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            s3_client(endpoint).list_buckets()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def sweep_numbers(berg_dir: Path, source: str, target: str, args: argparse.Namespace, units: int) -> dict:
    result = run(berg_dir=str(berg_dir), input=source, output=target, sessions=[SCAN], batch_size=args.batch_size,
                 chunk_frames=args.chunk_frames, show_progress=False)
    assert result.ok, result.errors
    return {"wall_s": round(result.wall_s, 2), "frames_per_s": round(result.frames_per_s, 3),
            "encode_s": round(result.encode_s, 2), "write_s": round(result.write_s, 2),
            "bytes_written": result.bytes_written,
            "bytes_per_frame_unit": round(result.bytes_written / (result.frame_scans * units), 3),
            "write_MB_per_s": round(result.bytes_written / 1e6 / max(result.write_s, 1e-9), 1)}


def raw_upload_mb_per_s(endpoint: str, bucket: str, size_mb: int = 64) -> float:
    """Throughput of one atomic publish (multipart above the threshold) of ``size_mb`` MB through S3Store."""
    store = open_store(f"s3://{bucket}/raw/", resolve_s3_options(endpoint))
    staged = store.staging_path("blob.bin")
    staged.write_bytes(np.random.default_rng(0).bytes(size_mb * 1024 * 1024))
    start = time.perf_counter()
    store.publish(staged, "blob.bin")
    return size_mb * 1.048576 / (time.perf_counter() - start)


def write_inputs(directory: Path, n_videos: int, n_frames: int) -> np.ndarray:
    """Generated videos (B, T, 144, 256) uint8, also saved as ``directory/v###.npy``."""
    videos = demo_videos(n_videos, n_frames, seed=5)
    directory.mkdir()
    for index, video in enumerate(videos):
        np.save(directory / f"v{index:03d}.npy", video)
    return videos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stimuli", type=int, default=12)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--chunk-frames", type=int, default=32)
    args = parser.parse_args()
    import ray

    work = Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    berg_dir = write_demo_release(work / "release", [SCAN], n_units=None)
    units = load_model(berg_dir, [SCAN]).n_units(SCAN)
    videos = write_inputs(work / "in", args.stimuli, args.frames)
    (work / "weed").mkdir()
    weed, endpoint = start_seaweedfs(work / "weed")
    os.environ.update(AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET, AWS_ENDPOINT_URL=endpoint)
    try:
        wait_ready(endpoint)
        bucket = "bench-sweep"
        s3_client(endpoint).create_bucket(Bucket=bucket)
        for path in sorted((work / "in").iterdir()):
            s3_client(endpoint).upload_file(str(path), bucket, f"in/{path.name}")
        ray.init(include_dashboard=False)
        report = {"stimuli": args.stimuli, "frames": args.frames, "batch_size": args.batch_size,
                  "chunk_frames": args.chunk_frames, "units": units, "cpus": os.cpu_count(),
                  "in_process_fps": round(in_process_fps(berg_dir, videos, args.batch_size, args.chunk_frames), 3)}
        report["sweep_local"] = sweep_numbers(berg_dir, str(work / "in"), str(work / "out"), args, units)
        report["sweep_s3"] = sweep_numbers(berg_dir, f"s3://{bucket}/in/", f"s3://{bucket}/out/", args, units)
        report["in_process_fps_after"] = round(in_process_fps(berg_dir, videos, args.batch_size, args.chunk_frames),
                                               3)
        reference = (report["in_process_fps"] + report["in_process_fps_after"]) / 2
        for key in ("sweep_local", "sweep_s3"):
            report[key]["ratio_to_in_process"] = round(report[key]["frames_per_s"] / reference, 3)
        report["raw_s3_upload_MB_per_s"] = round(raw_upload_mb_per_s(endpoint, bucket), 1)
        print(json.dumps(report, indent=1))
    finally:
        weed.terminate()
        weed.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
