"""frames/s of the README's API example on CPU, quiet and under load, for two checkouts side by side.

    python benchmarks/bench_threads.py --before /tmp/berg_ray-beb8c9c          # before vs this checkout
    python benchmarks/bench_threads.py --before OLD --frames 16 --runs 2 --burners 2

Each (load, code) pair runs in a fresh interpreter that imports ``berg_ray`` from that checkout exactly as a user
would (``OMP_WAIT_POLICY`` and ``OMP_NUM_THREADS`` removed from its environment, torch's thread default left
alone), loads the fixture release (session-8_scan-5, 320 units) through ``BERG.get_encoding_model`` on CPU and
calls ``BERG.encode`` on one seeded uint8 [T, 144, 256] video ``--runs`` times back to back. "loaded" runs start
``--burners`` CPU-burning processes (``while True: pass``) first and kill them afterwards. Pairs alternate
(quiet before, quiet after, loaded before, loaded after) so that drifting load from other users hits both codes.
One JSON line per run: frames/s, process CPU seconds per frame, minor page faults, voluntary and involuntary
context switches, torch threads, the OpenMP wait policy the child ended up with, and the machine with its load
average at the start of the run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURE_BERG = REPO_ROOT / "tests" / "fixtures" / "wang2025-reference" / "berg"
SCAN = "session-8_scan-5"


def machine() -> dict:
    """CPU model, logical CPUs usable by this process, kernel."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "cpus": len(os.sched_getaffinity(0)), "kernel": platform.release()}


def run_child(args: argparse.Namespace) -> None:
    """In the fresh interpreter: the README example, ``--runs`` encodes back to back, one JSON line each."""
    import numpy as np

    from berg_ray import BERG  # imported first, as in the README

    import torch

    berg = BERG(args.berg_dir)
    model = berg.get_encoding_model("calcium_2p-wang_2025-3DCNN", train_session=SCAN, device="cpu")
    video = np.random.default_rng(0).integers(0, 256, (args.frames, 144, 256), dtype=np.uint8)
    for index in range(args.runs):
        load = os.getloadavg()[0]
        before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        berg.encode(model, video)
        seconds, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
        cpu_s = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        print(json.dumps({
            "code": args.label, "load": args.load, "run": index, "frames": args.frames,
            "fps": args.frames / seconds, "cpu_s_per_frame": cpu_s / args.frames,
            "minor_faults": after.ru_minflt - before.ru_minflt, "voluntary_switches": after.ru_nvcsw - before.ru_nvcsw,
            "involuntary_switches": after.ru_nivcsw - before.ru_nivcsw, "torch_threads": torch.get_num_threads(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset: spin)"), "load_average_1min": load,
            "burners": args.burners if args.load == "loaded" else 0, "machine": machine()}), flush=True)


@contextlib.contextmanager
def burners(count: int) -> Iterator[list[subprocess.Popen]]:
    """``count`` processes that burn one CPU each until the block ends (then they are killed)."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        time.sleep(1.0)  # let them take the cores
        yield procs
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def spawn(args: argparse.Namespace, label: str, root: Path, load: str) -> list[dict]:
    """One (code, load) pair in a fresh interpreter importing berg_ray from ``root``; its JSON records."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}
    env["PYTHONPATH"] = str(root)
    command = [sys.executable, __file__, "--child", "--label", label, "--load", load, "--frames", str(args.frames),
               "--runs", str(args.runs), "--burners", str(args.burners), "--berg-dir", str(args.berg_dir)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=args.timeout_s, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{label} ({load}) failed:\n{result.stderr[-4000:]}")
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=False, help="checkout of the code to compare against")
    parser.add_argument("--after", type=Path, default=REPO_ROOT, help="checkout measured as 'after'")
    parser.add_argument("--frames", type=int, default=16, help="frames per video")
    parser.add_argument("--runs", type=int, default=2, help="encodes back to back in one process")
    parser.add_argument("--burners", type=int, default=2, help="CPU-burning processes of the loaded runs")
    parser.add_argument("--berg-dir", type=Path, default=FIXTURE_BERG)
    parser.add_argument("--timeout-s", type=float, default=300, help="per child process")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--label", default="after", help=argparse.SUPPRESS)
    parser.add_argument("--load", default="quiet", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        run_child(args)
        return
    codes = [("before", args.before)] if args.before else []
    codes.append(("after", args.after))
    for load in ("quiet", "loaded"):
        with burners(args.burners if load == "loaded" else 0):
            for label, root in codes:
                for record in spawn(args, label, root.resolve(), load):
                    print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
