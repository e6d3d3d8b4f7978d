"""Cost of the behaviour inputs: frames/s without behaviour, with perspectives, modulations, or both, side by side.

    python benchmarks/bench_behaviour.py                       # B in {1, 4}, T=64, 3 rounds, CPU
    python benchmarks/bench_behaviour.py --batch 8 --frames 300 --device cuda

One process, one model (the reference fixture's session-8_scan-5, or ``--weights-dir``), one seeded video batch;
each round runs the four variants in a rotated order (so machine drift hits all alike) through
``EncodingModel.encode_chunks`` with the default chunk length. Behaviour traces are seeded smooth random walks
in standardised units, non-zero on every frame (the worst case: every frame gets its own sampling grid and every
video its own modulation LSTM). Prints one JSON line per (variant, batch) with the machine, then a summary line
per batch: each variant's median fps relative to no behaviour.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_model import FIXTURE_WEIGHTS, build_model, machine  # noqa: E402

VARIANTS = ("none", "perspectives", "modulations", "both")


def traces(batch: int, frames: int, seed: int) -> torch.Tensor:
    """(batch, frames, 2) float32 random walks z-scored per video (never exactly zero in practice)."""
    walk = torch.randn(batch, frames, 2, generator=torch.Generator().manual_seed(seed)).cumsum(1)
    return (walk - walk.mean(1, keepdim=True)) / walk.std(1, keepdim=True)


def run(model, frames: torch.Tensor, scan: str, chunk_frames: int, behaviour: dict) -> float:
    """Seconds to encode ``frames`` (B, T, 144, 256) with ``behaviour`` keywords."""
    start = time.perf_counter()
    with torch.inference_mode():
        for _ in model.encode_chunks(frames, [scan] * frames.shape[0], chunk_frames, **behaviour):
            pass
    if model.device.type == "cuda":
        torch.cuda.synchronize(model.device)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chunk-frames", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--scan", default="session-8_scan-5")
    parser.add_argument("--weights-dir", type=Path, default=FIXTURE_WEIGHTS)
    args = parser.parse_args(argv)
    model = build_model(args.weights_dir, args.scan, None, args.device)
    for batch in args.batch:
        frames = torch.randint(0, 256, (batch, args.frames, 144, 256), dtype=torch.uint8,
                               generator=torch.Generator().manual_seed(1))
        inputs = {"none": {}, "perspectives": {"perspectives": traces(batch, args.frames, 2)},
                  "modulations": {"modulations": traces(batch, args.frames, 3)}}
        inputs["both"] = inputs["perspectives"] | inputs["modulations"]
        run(model, frames[:, :4], args.scan, args.chunk_frames, {k: v[:, :4] for k, v in inputs["both"].items()})
        seconds: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for r in range(args.rounds):
            for variant in VARIANTS[r % 4:] + VARIANTS[:r % 4]:
                seconds[variant].append(run(model, frames, args.scan, args.chunk_frames, inputs[variant]))
        fps = {v: batch * args.frames / statistics.median(s) for v, s in seconds.items()}
        for variant in VARIANTS:
            print(json.dumps({"benchmark": "behaviour", "variant": variant, "device": args.device, "batch": batch,
                              "frames": args.frames, "rounds": args.rounds, "fps_median": fps[variant],
                              "fps_best": batch * args.frames / min(seconds[variant]),
                              "seconds": seconds[variant], "machine": machine(args.device)}), flush=True)
        print(json.dumps({"benchmark": "behaviour_summary", "device": args.device, "batch": batch,
                          "fps_relative_to_none": {v: fps[v] / fps["none"] for v in VARIANTS}}), flush=True)


if __name__ == "__main__":
    main()
