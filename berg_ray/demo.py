"""The README's main job on built-in demo data: no downloads, no GPU.

1. Write a generated release (two scans) under the work directory.
2. Encode drifting-grating videos through both scans with the BERG facade, in one batch per scan.
3. Print a summary (shapes, response range, throughput).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from berg_ray.berg_api import BERG
from berg_ray.checkpoint.demo import DEMO_SCANS, demo_videos, write_demo_release
from berg_ray.config import MODEL_ID

DEMO_VIDEOS, DEMO_FRAMES, DEMO_RELEASE_UNITS = 2, 30, 128


def run_demo(work_dir: Path) -> int:
    """Run the demo; returns the exit code."""
    berg_dir = write_demo_release(Path(work_dir) / "berg", DEMO_SCANS, n_units=DEMO_RELEASE_UNITS)
    print(f"[1/2] generated release (random weights, {len(DEMO_SCANS)} scans) in {berg_dir}")
    videos = demo_videos(DEMO_VIDEOS, DEMO_FRAMES)
    print(f"[2/2] encoding {DEMO_VIDEOS} drifting-grating videos of {DEMO_FRAMES} frames (30 Hz) per scan")
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
    print(f"demo finished: responses saved in {work_dir}")
    return 0
