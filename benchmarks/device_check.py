"""The prepared GPU check (issue 10 A): fidelity, fast-mode agreement, throughput, profile and fan-out cost.

    python benchmarks/device_check.py --device cuda --out /tmp/device-check     # ~4 min on an H100/H200
    python benchmarks/device_check.py --device cpu --out /tmp/device-check      # tiny sizes (CI keeps it working)

One process, no Ray; it needs only the repository (the golden fixture is tests/fixtures/wang2025-reference). Each
section prints JSON lines (each with the machine) and appends them to OUT/device_check.jsonl; a section that fails
prints an ``{"section": ..., "error": ...}`` line and the check goes on. Sections:

1. ``fidelity``: float32 (TF32 off) against the reference's ``expected/`` outputs, each video alone and the three
   as one batch, both fixture scans; chunked (7 frames) against one pass.
2. ``agreement``: tf32 and bfloat16 against float32 on the fixture and on a generated release with the released
   unit count (9,941 units): per-unit Pearson r over (video, frame) samples (min, median), max relative error.
3. ``throughput``: frames/s (video-frames per second of wall time, readout included) for each batch size x
   precision, T frames per video; peak GPU memory. Skips what would not fit the time budget.
4. ``profile``: torch.profiler top kernels (B=32 bf16 on CUDA), wall share of the recurrent loop vs the
   feed-forward convs (CUDA events around each), kernel launches per video-frame and per time step, and the
   launch-bound floor of one recurrent step (eager step vs the same step replayed from a CUDA graph).
5. ``fanout``: device->host copy of one frame's features (512x16x24) in float32 and bf16 (pageable and pinned),
   against the core's time per frame; the 9,941-unit readout on the GPU vs on the CPU.
6. ``cudnn``: cuDNN's autotuner (``torch.backends.cudnn.benchmark``) on vs off at B=32, float32 and bfloat16.

The fused Triton kernels (``kernels="triton"``) are measured by ``benchmarks/device_kernels.py`` (no pydantic).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_model import agreement, machine  # noqa: E402  (benchmarks/ is not a package)
from device_check_parts import (  # noqa: E402
    fanout_section, natural_videos, profile_section, responses_of, scan_model,
)

from berg_ray.config import DEFAULT_CHUNK_FRAMES  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURE = REPO_ROOT / "tests" / "fixtures" / "wang2025-reference"
FIXTURE_SCANS = ("session-8_scan-5", "session-4_scan-7")
SIZES = {  # per device: what each section runs
    "cuda": {"fidelity_frames": 36, "agree_videos": 4, "agree_frames": 150, "units": 9941,
             "batches": [1, 8, 32, 64], "frames": 300, "profile_batch": 32, "profile_frames": 32},
    "cpu": {"fidelity_frames": 8, "agree_videos": 2, "agree_frames": 8, "units": 300,
            "batches": [1, 2], "frames": 8, "profile_batch": 2, "profile_frames": 4},
}


class Report:
    """Prints JSON lines and appends them to OUT/device_check.jsonl, each with the section and the machine."""

    def __init__(self, out_dir: Path, device: str) -> None:
        self.path = out_dir / "device_check.jsonl"
        self.machine = machine(device)
        self.started = time.perf_counter()

    def emit(self, section: str, **record) -> None:
        line = json.dumps({"section": section, **record, "elapsed_s": round(time.perf_counter() - self.started, 1),
                           "machine": self.machine})
        print(line, flush=True)
        with open(self.path, "a") as file:
            file.write(line + "\n")

    def run(self, section: str, function, *args) -> None:
        """Run one section; a failure is reported as a JSON line and the check goes on."""
        try:
            function(self, *args)
        except Exception as exc:  # noqa: BLE001 - one failing section must not hide the others
            self.emit(section, error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()[-2000:])


def max_relative_error(ours: np.ndarray, expected: np.ndarray) -> float:
    return float(np.max(np.abs(ours.astype(np.float64) - expected) / np.abs(expected.astype(np.float64))))


def fidelity(report: Report, device: str, sizes: dict) -> None:
    """float32 against the golden outputs (causal: the first N frames of expected/ are the outputs of N frames)."""
    frames = sizes["fidelity_frames"]
    stimuli = np.load(FIXTURE / "stimuli.npy")[:, :frames]
    for scan in FIXTURE_SCANS:
        expected = np.load(FIXTURE / "expected" / f"{scan}.npy")[:, :frames]
        model = scan_model(FIXTURE / "berg", scan, device, "float32")
        alone = np.stack([responses_of(model, stimuli[v:v + 1], scan, DEFAULT_CHUNK_FRAMES)[0]
                          for v in range(stimuli.shape[0])])
        batched = responses_of(model, stimuli, scan, DEFAULT_CHUNK_FRAMES)
        chunked = responses_of(model, stimuli, scan, 7)
        report.emit("fidelity", scan=scan, precision="float32", videos=stimuli.shape[0], frames=frames,
                    units=expected.shape[-1], max_rel_error_single=max_relative_error(alone, expected),
                    max_rel_error_batched=max_relative_error(batched, expected),
                    max_rel_error_chunked_vs_one_pass=max_relative_error(chunked, batched), goal=1e-5)


def fast_mode_agreement(report: Report, device: str, sizes: dict, release: Path) -> None:
    """tf32 / bfloat16 against float32 on the same inputs: the fixture's stimuli and natural-like videos."""
    modes = ["tf32", "bfloat16"] if device == "cuda" else ["bfloat16"]
    fixture_stimuli = np.load(FIXTURE / "stimuli.npy")[:, :sizes["fidelity_frames"]]
    cases = [("fixture", FIXTURE / "berg", FIXTURE_SCANS[0], fixture_stimuli),
             ("generated_release", release, FIXTURE_SCANS[0],
              natural_videos(sizes["agree_videos"], sizes["agree_frames"], seed=5))]
    for name, berg_dir, scan, videos in cases:
        model = scan_model(berg_dir, scan, device, "float32")
        reference = responses_of(model, videos, scan, DEFAULT_CHUNK_FRAMES)
        for mode in modes:
            model.set_precision(mode)
            fast = responses_of(model, videos, scan, DEFAULT_CHUNK_FRAMES)
            stats = agreement(torch.from_numpy(fast), torch.from_numpy(reference))
            report.emit("agreement", case=name, scan=scan, precision=mode, videos=videos.shape[0],
                        frames=videos.shape[1], units=reference.shape[-1], **stats,
                        goal={"unit_corr_median": 0.999, "unit_corr_min": 0.99})
        model.set_precision("float32")


def throughput(report: Report, device: str, sizes: dict, release: Path, budget_s: float) -> None:
    """frames/s per (precision, batch) at T frames; skips a run whose predicted time exceeds what is left."""
    modes = ["float32", "tf32", "bfloat16"] if device == "cuda" else ["float32", "bfloat16"]
    model = scan_model(release, FIXTURE_SCANS[0], device)
    deadline = time.perf_counter() + budget_s
    for mode in modes:
        model.set_precision(mode)
        fps = None
        for batch in sizes["batches"]:
            videos = torch.randint(0, 256, (batch, sizes["frames"], 144, 256), dtype=torch.uint8,
                                   generator=torch.Generator().manual_seed(batch))
            predicted = 2.5 * batch * sizes["frames"] / fps if fps else 0.0
            if time.perf_counter() + predicted > deadline:
                report.emit("throughput", precision=mode, batch=batch, frames=sizes["frames"], skipped=True,
                            reason=f"predicted {predicted:.0f} s exceeds the time budget")
                continue
            responses_of(model, videos[:, :8], FIXTURE_SCANS[0], DEFAULT_CHUNK_FRAMES)  # warm-up (kernels, cuDNN)
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            seconds = []
            for _ in range(2):
                start = time.perf_counter()
                responses_of(model, videos, FIXTURE_SCANS[0], DEFAULT_CHUNK_FRAMES)
                seconds.append(time.perf_counter() - start)
                if seconds[-1] > 20:  # one timed run is enough for long ones
                    break
            fps = batch * sizes["frames"] / min(seconds)
            record = {"precision": mode, "batch": batch, "frames": sizes["frames"], "units": model.n_units(
                FIXTURE_SCANS[0]), "chunk_frames": DEFAULT_CHUNK_FRAMES, "fps_best": fps,
                "fps_all": [batch * sizes["frames"] / s for s in seconds]}
            if device == "cuda":
                record["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
            report.emit("throughput", **record)


def cudnn_autotune(report: Report, device: str, sizes: dict, release: Path) -> None:
    """B=32 (CPU: the largest batch) x T frames with cuDNN's autotuner on vs off, float32 and bfloat16: whether the
    3-D convolutions (23% of GPU time) gain from benchmark mode. Results must not change beyond float32 rounding."""
    batch = sizes["profile_batch"]
    videos = torch.randint(0, 256, (batch, sizes["frames"], 144, 256), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(11))
    model = scan_model(release, FIXTURE_SCANS[0], device)
    for mode in ["float32", "bfloat16"]:
        model.set_precision(mode)
        outputs, fps = {}, {}
        for autotune in (False, True):
            torch.backends.cudnn.benchmark = autotune
            responses_of(model, videos[:, :8], FIXTURE_SCANS[0], DEFAULT_CHUNK_FRAMES)  # warm-up / autotune
            start = time.perf_counter()
            outputs[autotune] = responses_of(model, videos, FIXTURE_SCANS[0], DEFAULT_CHUNK_FRAMES)
            fps[autotune] = batch * sizes["frames"] / (time.perf_counter() - start)
        torch.backends.cudnn.benchmark = False
        report.emit("cudnn_autotune", precision=mode, batch=batch, frames=sizes["frames"], fps_default=fps[False],
                    fps_autotune=fps[True], max_rel_difference=max_relative_error(outputs[True], outputs[False]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda" if torch.cuda.is_available() else "cpu",
                        help="cuda: full sizes; cpu: tiny sizes (default: cuda when available)")
    parser.add_argument("--out", type=Path, required=True, help="directory for device_check.jsonl and profile.txt")
    parser.add_argument("--throughput-budget-s", type=float, default=150.0,
                        help="wall-time budget of the throughput section (default: %(default)s)")
    parser.add_argument("--sections", default="fidelity,agreement,throughput,profile,fanout,cudnn",
                        help="comma list of sections to run (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available; use --device cpu")
    args.out.mkdir(parents=True, exist_ok=True)
    sizes, wanted = SIZES[args.device], set(args.sections.split(","))
    report = Report(args.out, args.device)
    report.emit("start", device=args.device, sizes=sizes, sections=sorted(wanted))
    with tempfile.TemporaryDirectory() as tmp:
        release = None
        if wanted & {"agreement", "throughput", "profile", "fanout", "cudnn"}:
            from berg_ray.checkpoint.demo import write_demo_release
            release = write_demo_release(Path(tmp) / "berg", [FIXTURE_SCANS[0]], n_units=sizes["units"], seed=7)
        if "fidelity" in wanted:
            report.run("fidelity", fidelity, args.device, sizes)
        if "agreement" in wanted:
            report.run("agreement", fast_mode_agreement, args.device, sizes, release)
        if "throughput" in wanted:
            report.run("throughput", throughput, args.device, sizes, release, args.throughput_budget_s)
        if "profile" in wanted:
            report.run("profile", profile_section, args.device, sizes, release, args.out)
        if "fanout" in wanted:
            report.run("fanout", fanout_section, args.device, sizes, release)
        if "cudnn" in wanted:
            report.run("cudnn_autotune", cudnn_autotune, args.device, sizes, release)
    report.emit("done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
