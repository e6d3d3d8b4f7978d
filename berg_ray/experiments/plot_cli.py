"""``berg-ray plot responses``: a response raster (units x frames) of one stimulus and scan of a local sweep output,
with the stimulus's frames above it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from berg_ray.config import ScanId
from berg_ray.errors import BergRayError
from berg_ray.sweep.layout import MANIFEST_FILE


def add_plot_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``plot`` with its ``responses`` subcommand."""
    parser = subparsers.add_parser("plot", help="figures of sweep outputs (matplotlib PNG)")
    kinds = parser.add_subparsers(dest="plot", required=True, metavar="FIGURE")
    responses = kinds.add_parser("responses", help="response raster of one stimulus and scan of a sweep output",
                                 description="Units x frames raster (units sorted by the frame of their peak) of "
                                             "a --reduce none sweep output, with the stimulus frames above it.")
    responses.add_argument("--input", required=True, type=Path, help="local sweep output directory (Parquet)")
    responses.add_argument("--stimulus", required=True, help="stimulus_id (input path without suffix)")
    responses.add_argument("--session", required=True, help="scan, e.g. session-8_scan-5")
    responses.add_argument("--stimuli", type=Path, default=None,
                           help="the sweep's input directory, to show the stimulus frames (.npy inputs)")
    responses.add_argument("--out", type=Path, default=None, help="PNG to write (default: responses_<scan>.png)")
    responses.set_defaults(func=_run_plot_responses)
    return parser


def read_stimulus_responses(sweep_dir: Path, stimulus_id: str, scan: str) -> tuple[np.ndarray, int]:
    """Per-frame responses (T, U) of one stimulus and scan from a local ``--reduce none`` sweep output, and the
    number of leading frames the sweep skipped."""
    manifest = sweep_dir / MANIFEST_FILE
    if not manifest.is_file():
        raise BergRayError(f"{sweep_dir} is not a sweep output (no {MANIFEST_FILE}); pass the sweep's --output")
    options = json.loads(manifest.read_text())
    if options.get("reduce") != "none":
        raise BergRayError(f"{sweep_dir} holds mean responses (reduce={options.get('reduce')!r}); a raster needs a "
                           "sweep run with --reduce none")
    rows = pd.read_parquet(sweep_dir, filters=[("stimulus_id", "==", stimulus_id), ("train_session", "==", scan)])
    if rows.empty:
        raise BergRayError(f"no row for stimulus {stimulus_id!r} and {scan} in {sweep_dir}; check --stimulus "
                           "(input path without suffix) and --session")
    return np.stack(rows["responses"].iloc[0]).astype(np.float64), int(options.get("skip_frames", 0))


def _run_plot_responses(ns: argparse.Namespace) -> int:
    from berg_ray.experiments.figures import raster_figure

    scan = str(ScanId.parse(ns.session))
    responses, skipped = read_stimulus_responses(ns.input, ns.stimulus, scan)
    frames = None
    if ns.stimuli is not None:
        path = ns.stimuli / f"{ns.stimulus}.npy"
        if not path.is_file():
            raise BergRayError(f"{path} does not exist; --stimuli must be the sweep's input directory of .npy files")
        frames = np.load(path, mmap_mode="r")[skipped:]
    out = ns.out or Path(f"responses_{scan}_{ns.stimulus.replace('/', '_')}.png")
    raster_figure(responses, frames, f"{scan}: responses to {ns.stimulus}", out)
    print(f"wrote {out}: {responses.shape[1]} units x {responses.shape[0]} frames")
    return 0
