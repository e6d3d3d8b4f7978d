"""Throughput and memory of the model itself (EncodingModel, no Ray), on CPU and, where present, CUDA.

    python benchmarks/bench_model.py                          # B in {1, 8} x T in {90, 300}, + RSS 300 vs 3000
    python benchmarks/bench_model.py --quick                  # B=1, T=90 only, no RSS scaling run
    python benchmarks/bench_model.py --batch 1 --frames 90 --units 8000 --device cuda

Every configuration runs in a fresh subprocess (so its peak RSS is its own): the model is built from the weights
directory (default: the repository's reference fixture, tests/fixtures), the readout optionally widened to
``--units`` units by replicating and perturbing the fixture's 320, and the video (uniform random pixels, seeded;
cost does not depend on content) is pushed through ``encode_chunks`` with the default chunk length. frames/s counts video-frames (B x T)
per second of wall time, readout included. On CUDA the run is repeated in float32 (TF32 off), TF32 and bf16
autocast, and each fast mode is compared with float32 on the same inputs (per-unit correlation over all frames
and videos, max relative error). Prints one JSON line per measurement; each carries the machine description.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from berg_ray.config import DEFAULT_CHUNK_FRAMES, RELEASE_SUBDIR, WEIGHTS_SUBDIR
from berg_ray.model.network import EncodingModel
from berg_ray.runtime.threads import keep_freed_heap

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURE_WEIGHTS = REPO_ROOT / "tests" / "fixtures" / "wang2025-reference" / "berg" / RELEASE_SUBDIR / WEIGHTS_SUBDIR
READOUT_KEYS = ("readout.position.mu", "readout.position.sigma", "readout.feature.weights", "readout.biases")


def machine(device: str) -> dict:
    """CPU model, logical cores, torch version and threads, OpenMP wait policy, load average, GPU name (CUDA)."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""), "load_average_1min": os.getloadavg()[0]}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def widen_readout(params: dict, units: int, seed: int) -> dict:
    """Readout of ``units`` units made by cycling through the scan's units and perturbing positions and weights."""
    generator = torch.Generator().manual_seed(seed)
    wide = dict(params)
    for key, value in params.items():
        if key.startswith(READOUT_KEYS):
            index = torch.arange(units) % value.shape[0]
            noise = torch.randn((units, *value.shape[1:]), generator=generator)
            wide[key] = value[index] + 0.05 * value.std() * noise
    return wide


def build_model(weights_dir: Path, scan: str, units: int | None, device: str) -> EncodingModel:
    """EncodingModel of one scan from a release weights directory (params_core.pt, params_{s}_{c}.pt)."""
    session, scan_idx = (part.split("-")[1] for part in scan.split("_"))
    core = torch.load(weights_dir / "params_core.pt", weights_only=True)
    params = torch.load(weights_dir / f"params_{session}_{scan_idx}.pt", weights_only=True)
    if units:
        params = widen_readout(params, units, seed=0)
    keep_freed_heap()  # as load_model does in every process that runs the model
    return EncodingModel(core, {scan: params}).to(device)


def precision(mode: str, device: str) -> contextlib.AbstractContextManager:
    """Set TF32 flags for ``mode`` (fp32: off, explicitly) and return the autocast context (bf16) or a no-op."""
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
        torch.backends.cudnn.allow_tf32 = mode == "tf32"
    if mode == "bf16":
        return torch.autocast(device_type=device, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def encode(model: EncodingModel, frames: torch.Tensor, scan: str, chunk_frames: int, out: torch.Tensor
           ) -> torch.Tensor:
    """Responses (B, T, U) of ``frames`` via encode_chunks, written into the preallocated float32 ``out``."""
    with torch.inference_mode():
        for start, responses in model.encode_chunks(frames, [scan] * frames.shape[0], chunk_frames):
            chunk = torch.stack(responses)
            out[:, start:start + chunk.shape[1]] = chunk.float().to(out.device)
    if model.device.type == "cuda":
        torch.cuda.synchronize(model.device)
    return out


def agreement(fast: torch.Tensor, reference: torch.Tensor) -> dict:
    """Per-unit Pearson correlation over all (video, frame) samples, and max relative error, fast vs reference."""
    a, b = fast.reshape(-1, fast.shape[-1]).double(), reference.reshape(-1, reference.shape[-1]).double()
    a, b = a - a.mean(0), b - b.mean(0)
    corr = (a * b).sum(0) / (a.norm(dim=0) * b.norm(dim=0))
    rel = ((fast.double() - reference.double()).abs() / reference.double().abs()).max()
    return {"unit_corr_min": float(corr.min()), "unit_corr_median": float(corr.median()), "max_rel_error": float(rel)}


def run_child(args: argparse.Namespace) -> None:
    """One configuration in this process: timing per mode, peak memory, agreement of fast modes with float32."""
    if args.threads:
        torch.set_num_threads(args.threads)
    model = build_model(args.weights_dir, args.scan, args.units, args.device)
    generator = torch.Generator().manual_seed(1)
    frames = torch.randint(0, 256, (args.batch[0], args.frames[0], 144, 256), dtype=torch.uint8, generator=generator)
    out = torch.zeros(*frames.shape[:2], model.n_units(args.scan))  # resident before the baseline is taken
    modes = ["fp32", "tf32", "bf16"] if args.device == "cuda" else ["fp32"]
    encode(model, frames[:, :4], args.scan, args.chunk_frames, out[:, :4].clone())  # warm-up
    baseline_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    reference = None
    for mode in modes:
        if args.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        seconds = []
        for _ in range(args.repeats):
            with precision(mode, args.device):
                start = time.perf_counter()
                encode(model, frames, args.scan, args.chunk_frames, out)
                seconds.append(time.perf_counter() - start)
        record = _record(args, mode, seconds, frames.shape, model.n_units(args.scan), baseline_mb)
        if reference is None:
            reference = out.clone()
        else:
            record |= agreement(out, reference)
        print(json.dumps(record), flush=True)


def _record(args: argparse.Namespace, mode: str, seconds: list[float], shape: torch.Size, units: int,
            baseline_mb: float) -> dict:
    video_frames = shape[0] * shape[1]
    record = {"device": args.device, "mode": mode, "batch": shape[0], "frames": shape[1], "units": units,
              "chunk_frames": args.chunk_frames, "repeats": len(seconds),
              "fps_best": video_frames / min(seconds), "fps_median": video_frames / statistics.median(seconds),
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              "rss_before_run_mb": baseline_mb, "output_mb": video_frames * units * 4 / 2**20}
    if args.device == "cuda":
        record["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return record | {"machine": machine(args.device)}


def spawn(args: argparse.Namespace, device: str, batch: int, frames: int, repeats: int) -> list[dict]:
    """Run one configuration in a fresh interpreter and return its JSON records."""
    command = [sys.executable, __file__, "--child", "--device", device, "--batch", str(batch), "--frames",
               str(frames), "--repeats", str(repeats), "--scan", args.scan, "--weights-dir", str(args.weights_dir),
               "--chunk-frames", str(args.chunk_frames), "--threads", str(args.threads)]
    if args.units:
        command += ["--units", str(args.units)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"configuration {device} B={batch} T={frames} failed:\n{result.stderr[-4000:]}")
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def rss_scaling(args: argparse.Namespace, device: str) -> dict:
    """Peak RSS of one video of each --rss-frames length (B=1, chunked, one run each) and their ratio."""
    peaks = {frames: spawn(args, device, 1, frames, 1)[0] for frames in args.rss_frames}
    short, long = min(peaks), max(peaks)
    ratio = peaks[long]["peak_rss_mb"] / peaks[short]["peak_rss_mb"]
    net = ((peaks[long]["peak_rss_mb"] - peaks[long]["output_mb"])
           / (peaks[short]["peak_rss_mb"] - peaks[short]["output_mb"]))
    return {"metric": "rss_scaling", "device": device, "frames": [short, long],
            "peak_rss_mb": [peaks[short]["peak_rss_mb"], peaks[long]["peak_rss_mb"]],
            "output_mb": [peaks[short]["output_mb"], peaks[long]["output_mb"]],
            "ratio": ratio, "ratio_without_output": net, "chunk_frames": args.chunk_frames,
            "machine": peaks[long]["machine"]}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="videos per batch")
    parser.add_argument("--frames", type=int, nargs="+", default=[90, 300], help="frames per video")
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all",
                        help="all: cpu, plus cuda when available")
    parser.add_argument("--quick", action="store_true", help="B=1, T=90, one repeat, no RSS scaling run")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per configuration (best and median)")
    parser.add_argument("--units", type=int, default=None, help="widen the readout to this many units")
    parser.add_argument("--scan", default="session-8_scan-5")
    parser.add_argument("--weights-dir", type=Path, default=FIXTURE_WEIGHTS)
    parser.add_argument("--chunk-frames", type=int, default=DEFAULT_CHUNK_FRAMES)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--rss-frames", type=int, nargs=2, default=[300, 3000], help="video lengths to compare")
    parser.add_argument("--skip-rss", action="store_true", help="skip the RSS 300 vs 3000 frames run")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        run_child(args)
        return
    if args.quick:
        args.batch, args.frames, args.repeats, args.skip_rss = [1], [90], 1, True
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    devices = [args.device] if args.device != "all" else ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    for device in devices:
        for batch in args.batch:
            for frames in args.frames:
                for record in spawn(args, device, batch, frames, args.repeats):
                    print(json.dumps(record), flush=True)
        if not args.skip_rss:
            print(json.dumps(rss_scaling(args, device)), flush=True)


if __name__ == "__main__":
    main()
