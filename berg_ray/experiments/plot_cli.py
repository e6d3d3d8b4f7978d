"""``berg-ray plot responses``: a response raster (units x frames) of one stimulus and scan of a sweep output (a local
directory or s3://bucket/prefix), with the stimulus's frames above it."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np

from berg_ray.cli_options import add_one_session_option, add_output_option, add_s3_options
from berg_ray.config import ScanId
from berg_ray.errors import BergRayError, StorageError
from berg_ray.storage import Store, open_store
from berg_ray.sweep.layout import MANIFEST_FILE


def add_plot_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``plot`` with its ``responses`` subcommand."""
    parser = subparsers.add_parser("plot", help="figures of sweep outputs (matplotlib PNG)")
    kinds = parser.add_subparsers(dest="plot", required=True, metavar="FIGURE")
    responses = kinds.add_parser("responses", help="response raster of one stimulus and scan of a sweep output",
                                 description="Units x frames raster (units sorted by the frame of their peak) of "
                                             "a --reduce none sweep output, with the stimulus frames above it.")
    responses.add_argument("--input", required=True, help="sweep output: a local directory or s3://bucket/prefix")
    responses.add_argument("--stimulus", required=True, help="stimulus_id (input path without suffix)")
    add_one_session_option(responses)
    responses.add_argument("--stimuli", default=None, help="the sweep's input (local or s3://), to show the "
                           "stimulus frames (.npy inputs; default: no frames)")
    add_s3_options(responses, anonymous=True)
    add_output_option(responses, "PNG to write", "PNG", required=False, type=Path,
                      default_text="responses_<scan>_<stimulus>.png")
    responses.set_defaults(func=_run_plot_responses)
    return parser


def read_stimulus_responses(sweep: Store, stimulus_id: str, scan: str) -> tuple[np.ndarray, int]:
    """Per-frame responses (T, U) of one stimulus and scan from a ``--reduce none`` sweep output, and the number
    of leading frames the sweep skipped."""
    try:
        options = json.loads(sweep.read_bytes(MANIFEST_FILE))
    except StorageError:
        raise BergRayError(f"{sweep.uri} is not a sweep output (no readable {MANIFEST_FILE}); pass the sweep's "
                           "--out") from None
    if options.get("reduce") != "none":
        raise BergRayError(f"{sweep.uri} holds mean responses (reduce={options.get('reduce')!r}); a raster needs a "
                           "sweep run with --reduce none")
    import pyarrow.parquet as pq

    filesystem, path = sweep.arrow_path("")
    rows = pq.read_table(path.rstrip("/"), filesystem=filesystem, columns=["responses"],
                         filters=[("stimulus_id", "==", stimulus_id), ("train_session", "==", scan)]).to_pandas()
    if rows.empty:
        raise BergRayError(f"no row for stimulus {stimulus_id!r} and {scan} in {sweep.uri}; check --stimulus "
                           "(input path without suffix) and --sessions")
    return np.stack(rows["responses"].iloc[0]).astype(np.float64), int(options.get("skip_frames", 0))


def read_stimulus_frames(stimuli: Store, stimulus_id: str) -> np.ndarray:
    """The uint8 (T, 144, 256) frames of ``{stimulus_id}.npy`` in the sweep's input."""
    try:
        data = stimuli.read_bytes(f"{stimulus_id}.npy")
    except StorageError:
        raise BergRayError(f"{stimuli.uri_of(stimulus_id + '.npy')} cannot be read; --stimuli must be the sweep's "
                           "input holding the .npy videos") from None
    return np.load(io.BytesIO(data), allow_pickle=False)


def _run_plot_responses(ns: argparse.Namespace) -> int:
    from berg_ray.experiments.figures import raster_figure

    scan = str(ScanId.parse(ns.session))
    responses, skipped = read_stimulus_responses(_store(ns.input, ns), ns.stimulus, scan)
    frames = None
    if ns.stimuli is not None:
        frames = read_stimulus_frames(_store(ns.stimuli, ns), ns.stimulus)[skipped:]
    out = Path(ns.out) if ns.out else Path(f"responses_{scan}_{ns.stimulus.replace('/', '_')}.png")
    raster_figure(responses, frames, f"{scan}: responses to {ns.stimulus}", out)
    print(f"wrote {out}: {responses.shape[1]} units x {responses.shape[0]} frames")
    return 0


def _store(location: str, ns: argparse.Namespace) -> Store:
    from berg_ray.storage_s3 import s3_options_for

    return open_store(location, s3_options_for(location, ns.s3_endpoint_url, ns.anonymous))
