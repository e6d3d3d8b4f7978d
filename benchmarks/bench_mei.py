"""Cost of one MEI optimisation step (forward + checkpointed backward + update) vs units per batch and frames.

    python benchmarks/bench_mei.py                                  # B in {1, 4}, F in {10, 30}, CPU
    python benchmarks/bench_mei.py --units-per-batch 8 32 --device cuda

One process, one model (the reference fixture's session-8_scan-5), ``berg_ray.mei.optimise_meis`` with the default
settings but ``--steps`` steps, static MEIs; the first step of every configuration is a warm-up run not counted
(each configuration runs ``--steps`` + 1 steps, timed as the difference with a 1-step run). Prints one JSON line
per configuration with the machine: seconds per step, per step and unit, per unit-frame.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_model import FIXTURE_WEIGHTS, build_model, machine  # noqa: E402


def seconds(model, scan: str, units: list[int], settings) -> float:
    from berg_ray.mei import optimise_meis

    start = time.perf_counter()
    optimise_meis(model, scan, units, settings)
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    from berg_ray.mei import MeiSettings

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units-per-batch", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--frames", type=int, nargs="+", default=[10, 30])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--scan", default="session-8_scan-5")
    parser.add_argument("--weights-dir", type=Path, default=FIXTURE_WEIGHTS)
    args = parser.parse_args(argv)
    model = build_model(args.weights_dir, args.scan, None, args.device)
    for frames in args.frames:
        for batch in args.units_per_batch:
            base = MeiSettings(frames=frames, burn_in=min(10, frames - 1))
            units = list(range(batch))
            one = seconds(model, args.scan, units, dataclasses.replace(base, steps=1))
            many = seconds(model, args.scan, units, dataclasses.replace(base, steps=args.steps + 1))
            per_step = (many - one) / args.steps
            print(json.dumps({"bench": "mei_step", "device": args.device, "units_per_batch": batch, "frames": frames,
                              "steps": args.steps, "s_per_step": round(per_step, 3),
                              "s_per_step_unit": round(per_step / batch, 3),
                              "s_per_unit_frame": round(per_step / batch / frames, 4),
                              "machine": machine(args.device)}), flush=True)


if __name__ == "__main__":
    main()
