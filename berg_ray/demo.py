"""The README's main job on built-in demo data: no downloads, no GPU.

1. Write a generated release (two scans) under the work directory.
2. Encode drifting-grating videos through both scans with the BERG facade, in one batch per scan.
3. Start the Ray Serve service on a local Ray cluster and send it a request over HTTP.
4. Run a Ray Data sweep over demo video files and write Parquet.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from berg_ray.berg_api import BERG
from berg_ray.checkpoint.demo import DEMO_SCANS, demo_videos, write_demo_release
from berg_ray.config import MODEL_ID
from berg_ray.serve.demo import run_serve_demo
from berg_ray.sweep.demo import run_sweep_demo
from berg_ray.runtime.threads import set_torch_threads

DEMO_VIDEOS, DEMO_FRAMES, DEMO_RELEASE_UNITS = 2, 30, 128


def write_demo_berg_dir(work_dir: Path) -> Path:
    """Step 1: the demo's generated release in ``work_dir/berg`` (the README's ``demo-output/berg``), replaced whole."""
    return write_demo_release(Path(work_dir) / "berg", DEMO_SCANS, n_units=DEMO_RELEASE_UNITS, force=True)


def run_demo(work_dir: Path, verbose: bool = False) -> int:
    """Run the demo; returns the exit code. ``verbose`` also shows Ray's own logs on the console."""
    set_torch_threads()
    berg_dir = write_demo_berg_dir(work_dir)
    print(f"[1/4] generated release (random weights, {len(DEMO_SCANS)} scans) in {berg_dir}")
    videos = demo_videos(DEMO_VIDEOS, DEMO_FRAMES)
    print(f"[2/4] encoding {DEMO_VIDEOS} drifting-grating videos of {DEMO_FRAMES} frames (30 Hz) per scan")
    berg = BERG(berg_dir)
    for session in DEMO_SCANS:
        model = berg.get_encoding_model(MODEL_ID, train_session=session, device="cpu")
        start = time.perf_counter()
        responses = np.asarray(berg.encode(model, videos))
        seconds = time.perf_counter() - start
        print(f"      {session}: responses float32 {list(responses.shape)}, range "
              f"[{responses.min():.3f}, {responses.max():.3f}], {videos.shape[0] * videos.shape[1] / seconds:.1f} "
              "frames/s on CPU")
        np.save(Path(work_dir) / f"responses_{session}.npy", responses)
    print("[3/4] Ray Serve: core + readout heads on a local Ray cluster, one request over HTTP")
    run_serve_demo(berg_dir, videos, verbose)
    print("[4/4] Ray Data sweep: demo videos -> Parquet")
    run_sweep_demo(berg_dir, Path(work_dir), verbose)
    print(f"demo finished: outputs in {work_dir}")
    return 0
