"""Memory and time of a backward pass through the model vs the number of frames F, with and without
activation checkpointing over time (berg_ray.model.gradients).

    python benchmarks/bench_gradients.py                          # F in {8, 16, 32, 64}, CPU
    python benchmarks/bench_gradients.py --frames 8 32 128 --device cuda

Each (F, mode) runs in its own process (a fresh peak): load one scan of the reference fixture's weights, then
time one inference pass of the same uint8 video (``encode_chunks``, no grad) and one forward + backward of the mean
log-rate of 8 units over the video with respect to the float video. Modes: ``checkpointed`` (chunks of
``--chunk-frames``, recomputed in the backward pass) and ``recorded`` (one graph over all frames; only up to
``--max-recorded-frames``). Peak memory: the process's peak RSS minus its RSS after the model loaded (CPU), or
``torch.cuda.max_memory_allocated`` (CUDA). Prints one JSON line per run with the machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_model import FIXTURE_WEIGHTS, build_model, machine  # noqa: E402


def rss_mb() -> float:
    """Current resident set size in MB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(frames: int, mode: str, chunk: int, device: str, weights: Path, scan: str) -> dict:
    from berg_ray.model.gradients import differentiable_responses

    model = build_model(weights, scan, None, device)
    video = torch.randint(0, 256, (1, frames, 144, 256), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(0)).to(device)
    units = torch.arange(8)
    start = time.perf_counter()
    with torch.no_grad():
        for _ in model.encode_chunks(video, [scan], chunk, {scan: units}):
            pass
    inference_s = time.perf_counter() - start
    base = rss_mb()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2**20
    leaf = video.float().requires_grad_(True)
    start = time.perf_counter()
    responses = differentiable_responses(model, leaf, scan, units, chunk, checkpointed=mode == "checkpointed")
    responses.log().mean().backward()
    if device == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gradient_s = time.perf_counter() - start
    return {"bench": "gradients", "device": device, "mode": mode, "frames": frames, "chunk_frames": chunk,
            "inference_s": round(inference_s, 3), "forward_backward_s": round(gradient_s, 3),
            "forward_backward_per_frame_s": round(gradient_s / frames, 4),
            "backward_over_inference": round(gradient_s / inference_s, 2),
            "peak_extra_mb": round(peak - base, 1), "machine": machine(device)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--chunk-frames", type=int, default=8)
    parser.add_argument("--max-recorded-frames", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--scan", default="session-8_scan-5")
    parser.add_argument("--weights-dir", type=Path, default=FIXTURE_WEIGHTS)
    parser.add_argument("--child", nargs=2, metavar=("FRAMES", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = child(int(args.child[0]), args.child[1], args.chunk_frames, args.device, args.weights_dir, args.scan)
        print(json.dumps(result), flush=True)
        return
    for frames in args.frames:
        for mode in ("checkpointed", "recorded"):
            if mode == "recorded" and frames > args.max_recorded_frames:
                continue
            command = [sys.executable, __file__, "--child", str(frames), mode, "--chunk-frames",
                       str(args.chunk_frames), "--device", args.device, "--scan", args.scan,
                       "--weights-dir", str(args.weights_dir)]
            subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
