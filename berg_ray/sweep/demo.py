"""The sweep part of ``berg-ray demo``: a tiny local sweep over generated videos, read back with plain pyarrow."""

from __future__ import annotations

from pathlib import Path

import numpy as np

DEMO_VIDEOS, DEMO_FRAMES = 3, 8


def run_sweep_demo(berg_dir: Path, work_dir: Path, verbose: bool = False) -> None:
    """Write a few demo videos as .npy, sweep them over every scan of ``berg_dir`` into local Parquet, print it.

    Args:
        berg_dir: a BERG directory (the demo release).
        work_dir: scratch directory; gets ``sweep_input/`` and ``sweep_output/``.
        verbose: also show Ray's own logs on the console.
    """
    import pyarrow.parquet as pq

    from berg_ray.checkpoint.demo import demo_videos
    from berg_ray.sweep.runner import run

    input_dir, output_dir = Path(work_dir) / "sweep_input", Path(work_dir) / "sweep_output"
    input_dir.mkdir(parents=True, exist_ok=True)
    for index, video in enumerate(demo_videos(DEMO_VIDEOS, DEMO_FRAMES, seed=7)):
        path = input_dir / f"clip_{index:02d}.npy"
        if not (path.is_file() and np.array_equal(np.load(path), video)):  # rewriting would mark it changed
            np.save(path, video)
    result = run(berg_dir=str(berg_dir), input=str(input_dir), output=str(output_dir), sessions="all",
                 batch_size=2, reduce="mean", show_progress=False, verbose=verbose)
    table = pq.read_table(output_dir).sort_by([("stimulus_id", "ascending"), ("train_session", "ascending")])
    work = (f"output already complete, nothing recomputed ({result.wall_s:.1f} s)" if result.complete_before else
            f"{result.wall_s:.1f} s, {result.frames_per_s:.1f} frames/s")
    print(f"sweep demo: {result.stimuli} videos x {len(result.scans)} scans -> {table.num_rows} Parquet rows in "
          f"{output_dir} ({work}, errors: {len(result.errors)})")
    print(table.select(["stimulus_id", "train_session", "n_frames"]).to_pandas().to_string(index=False))
