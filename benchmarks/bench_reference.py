"""berg_ray against the reference implementation (cajal/fnn), side by side on CPU, float32.

    python benchmarks/bench_reference.py --reference /path/to/fnn-c34328c --reference-python /path/to/venv/bin/python
    python benchmarks/bench_reference.py --reference REF --units 150 9941 --threads 1 2 --rounds 5 --frames 90
    python benchmarks/bench_reference.py --summarize run.jsonl    # the summary of an earlier (or cut-off) run

The reference is NOT part of this repository: ``--reference`` is a directory holding its ``fnn`` package (e.g.
``git archive c34328c fnn | tar -x -C DIR`` of github.com/cajal/fnn, MIT), and ``--reference-python`` an
interpreter that has its dependencies (torch, numpy, pandas, tqdm, requests); default: this interpreter.

For each unit count a generated release (``write_demo_release``, session-8_scan-5, seeded random weights) is
written under ``--data-dir`` (reused when present) and BOTH implementations load the same files: berg_ray through
``berg_ray.load_model`` + ``berg_ray.inference.encode_videos`` (float32, default chunking), the reference through
``fnn.microns.scan(8, 5, cuda=False, directory=WEIGHTS_DIR)`` timing ``model.predict(stimuli=video)``. One video
(B=1, ``--frames`` frames of seeded uniform uint8 pixels; cost does not depend on content) is written once and
read by every run. Every measurement runs in a fresh subprocess with ``torch.set_num_threads(N)``; after a
warm-up (``--warmup-frames``: by default the whole video, so that both time their steady state: berg_ray's
first pass over a 32-frame chunk maps its heap and builds its oneDNN kernels, while the reference's per-frame
loop is warm after one frame; runs before 2026-11-27 23:30 used 4 frames) the whole video is timed once (wall and
process CPU seconds). Rounds alternate the two
implementations (ours first in even rounds, the reference first in odd ones) over every (units, threads) pair,
so machine drift hits both alike; each pair's ratio is ours fps / reference fps of the same round (and
``cpu_ratio`` the reference's process CPU time per frame / ours, steadier on a shared machine), and the
responses of the pair are compared (max relative error). Prints one JSON line per measurement (with the machine
and the 1-minute load average before the run), then per-(units, threads) summaries and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCAN = "session-8_scan-5"


# ----------------------------------------------------------------------------------------------- children
def _child(args: argparse.Namespace) -> None:
    """One timed run of one implementation in this process; prints one JSON line, saves the responses."""
    import numpy as np
    import torch

    torch.set_num_threads(args.threads[0])
    video = np.load(args.video)
    run = _ours(args.berg_dir) if args.child == "ours" else _reference(args.reference, args.weights_dir)
    frames, warmup = video.shape[0], args.warmup_frames or video.shape[0]
    run(video[:warmup])
    wall, cpu = time.perf_counter(), time.process_time()
    responses = run(video)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    np.save(args.responses, np.asarray(responses, dtype=np.float32))
    print(json.dumps({"impl": args.child, "threads": torch.get_num_threads(), "frames": frames,
                      "units": int(responses.shape[-1]), "seconds": wall, "fps": frames / wall,
                      "cpu_ms_per_frame": 1e3 * cpu / frames, "warmup_frames": warmup,
                      "torch": torch.__version__}), flush=True)


def _ours(berg_dir: str):
    """berg_ray's local path: (T, 144, 256) uint8 -> (T, U) float32."""
    from berg_ray import load_model
    from berg_ray.inference import encode_videos

    model = load_model(berg_dir, [SCAN], device="cpu")
    return lambda video: encode_videos(model, video[None], [SCAN])[0]


def _reference(reference: str, weights_dir: str):
    """The reference's documented path: fnn.microns.scan + Visual.predict, (T, 144, 256) uint8 -> (T, U).

    No berg_ray module is imported in this process (its interpreter need not have berg_ray's dependencies).
    """
    sys.path.insert(0, str(reference))
    import fnn.microns

    session, scan_idx = (int(part.split("-")[1]) for part in SCAN.split("_"))
    model, _ = fnn.microns.scan(session, scan_idx, cuda=False, directory=weights_dir)
    return lambda video: model.predict(stimuli=video)


# ------------------------------------------------------------------------------------------------ parent
def _release(data_dir: Path, units: int) -> Path:
    """A generated release with ``units`` units for SCAN (written once, reused)."""
    from berg_ray.checkpoint.demo import write_demo_release

    berg_dir = data_dir / f"units-{units}"
    if not (berg_dir / ".complete").exists():
        write_demo_release(berg_dir, [SCAN], units, seed=0)
        (berg_dir / ".complete").touch()
    return berg_dir


def _spawn(args: argparse.Namespace, impl: str, berg_dir: Path, threads: int, video: Path, responses: Path) -> dict:
    from berg_ray.checkpoint.release import weights_dir

    env = dict(os.environ)
    if impl == "ours":
        python, repo = sys.executable, str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
    else:
        python = args.reference_python
        env.pop("PYTHONPATH", None)  # the reference process sees only its own interpreter and --reference
    command = [python, __file__, "--child", impl, "--berg-dir", str(berg_dir), "--threads", str(threads),
               "--video", str(video), "--responses", str(responses), "--reference", str(args.reference),
               "--weights-dir", str(weights_dir(berg_dir)), "--warmup-frames", str(args.warmup_frames)]
    load = os.getloadavg()[0]
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False, timeout=args.timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{impl} ({berg_dir.name}, {threads} threads) failed:\n{result.stderr[-4000:]}")
    record = json.loads(result.stdout.strip().splitlines()[-1])
    return record | {"load_average_1min_before": load, "load_average_1min_after": os.getloadavg()[0]}


def _max_rel_error(ours: Path, reference: Path) -> float:
    import numpy as np

    a, b = np.load(ours).astype(np.float64), np.load(reference).astype(np.float64)
    if a.shape != b.shape:
        raise RuntimeError(f"response shapes differ: ours {a.shape}, reference {b.shape}")
    return float((np.abs(a - b) / np.abs(b)).max())


def measure(args: argparse.Namespace) -> list[dict]:
    """All rounds; one record per (round, units, threads) pair with both implementations' runs."""
    import numpy as np

    from bench_model import machine

    args.data_dir.mkdir(parents=True, exist_ok=True)
    releases = {units: _release(args.data_dir, units) for units in args.units}
    pairs = []
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "video.npy"
        rng = np.random.default_rng(args.seed)
        np.save(video, rng.integers(0, 256, (args.frames, 144, 256), dtype=np.uint8))
        for round_ in range(args.rounds):
            for units in args.units:
                for threads in args.threads:
                    order = ("ours", "reference") if round_ % 2 == 0 else ("reference", "ours")
                    runs = {impl: _spawn(args, impl, releases[units], threads, video, Path(tmp) / f"{impl}.npy")
                            for impl in order}
                    pair = {"round": round_, "units": units, "threads": threads, "order": list(order),
                            "ours": runs["ours"], "reference": runs["reference"],
                            "ratio": runs["ours"]["fps"] / runs["reference"]["fps"],
                            "cpu_ratio": runs["reference"]["cpu_ms_per_frame"] / runs["ours"]["cpu_ms_per_frame"],
                            "max_rel_error": _max_rel_error(Path(tmp) / "ours.npy", Path(tmp) / "reference.npy"),
                            "machine": machine("cpu")}
                    print(json.dumps(pair), flush=True)
                    pairs.append(pair)
    return pairs


def summarize(pairs: list[dict]) -> list[dict]:
    """Per (units, threads): median fps and CPU ms/frame of each side, ratio min/median/max, loads, error."""
    keys = sorted({(p["units"], p["threads"]) for p in pairs})
    rows = []
    for units, threads in keys:
        group = [p for p in pairs if (p["units"], p["threads"]) == (units, threads)]
        ratios = [p["ratio"] for p in group]
        loads = [p[side]["load_average_1min_before"] for p in group for side in ("ours", "reference")]
        row = {"metric": "summary", "units": units, "threads": threads, "rounds": len(group),
               "ratio_min": min(ratios), "ratio_median": statistics.median(ratios), "ratio_max": max(ratios),
               "cpu_ratio_median": statistics.median(p["reference"]["cpu_ms_per_frame"] / p["ours"]["cpu_ms_per_frame"]
                                                     for p in group),
               "load_min": min(loads), "load_max": max(loads),
               "max_rel_error": max(p["max_rel_error"] for p in group)}
        for side in ("ours", "reference"):
            row[f"{side}_fps_median"] = statistics.median(p[side]["fps"] for p in group)
            row[f"{side}_fps_best"] = max(p[side]["fps"] for p in group)
            row[f"{side}_cpu_ms_per_frame_median"] = statistics.median(p[side]["cpu_ms_per_frame"] for p in group)
        rows.append(row)
    for row in rows:  # thread scaling: median fps at N threads / median fps at 1 thread, same units
        single = next((r for r in rows if r["units"] == row["units"] and r["threads"] == 1), None)
        if single is not None:
            for side in ("ours", "reference"):
                row[f"{side}_scaling_vs_1_thread"] = row[f"{side}_fps_median"] / single[f"{side}_fps_median"]
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| units | threads | rounds | ours fps (median / best) | reference fps (median / best) | ratio "
             "min / median / max | ours / ref CPU ms per frame (ratio) | scaling vs 1 thread (ours / ref) | load | "
             "max rel error |", "| " + " | ".join(["---"] * 10) + " |"]
    for r in rows:
        scaling = (f"{r['ours_scaling_vs_1_thread']:.2f} / {r['reference_scaling_vs_1_thread']:.2f}"
                   if "ours_scaling_vs_1_thread" in r else "-")
        lines.append(f"| {r['units']:,} | {r['threads']} | {r['rounds']} | {r['ours_fps_median']:.2f} / "
                     f"{r['ours_fps_best']:.2f} | {r['reference_fps_median']:.2f} / {r['reference_fps_best']:.2f} | "
                     f"{r['ratio_min']:.2f} / **{r['ratio_median']:.2f}** / {r['ratio_max']:.2f} | "
                     f"{r['ours_cpu_ms_per_frame_median']:.0f} / {r['reference_cpu_ms_per_frame_median']:.0f} "
                     f"({r['cpu_ratio_median']:.2f}) | "
                     f"{scaling} | {r['load_min']:.1f}-{r['load_max']:.1f} | {r['max_rel_error']:.1e} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, help="directory holding the reference's fnn/ (required to measure)")
    parser.add_argument("--reference-python", default=sys.executable, help="interpreter for the reference runs")
    parser.add_argument("--units", type=int, nargs="+", default=[150, 9941], help="unit counts (one release each)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch threads")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per (units, threads)")
    parser.add_argument("--frames", type=int, default=90, help="frames of the (B=1) video")
    parser.add_argument("--seed", type=int, default=0, help="seed of the video's pixels")
    parser.add_argument("--warmup-frames", type=int, default=0,
                        help="frames run untimed first in every process (0: the whole video)")
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "berg-ray-refbench",
                        help="where the generated releases are written (reused)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed for one run")
    parser.add_argument("--summarize", type=Path, help="only summarize the pair lines of an earlier run's output")
    parser.add_argument("--child", choices=["ours", "reference"], help=argparse.SUPPRESS)
    parser.add_argument("--berg-dir", help=argparse.SUPPRESS)
    parser.add_argument("--weights-dir", help=argparse.SUPPRESS)
    parser.add_argument("--video", help=argparse.SUPPRESS)
    parser.add_argument("--responses", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        _child(args)
        return
    if args.summarize:
        lines = args.summarize.read_text().splitlines()
        pairs = [json.loads(line) for line in lines if line.startswith('{"round"')]
    elif args.reference is None or not (args.reference / "fnn" / "microns" / "__init__.py").is_file():
        raise SystemExit(f"error: {args.reference} does not hold the reference's fnn package (fnn/microns)")
    else:
        pairs = measure(args)
    rows = summarize(pairs)
    for row in rows:
        print(json.dumps(row), flush=True)
    print("\n" + markdown(rows))


if __name__ == "__main__":
    main()
