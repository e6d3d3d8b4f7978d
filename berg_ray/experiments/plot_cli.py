"""``berg-ray plot responses``: a response raster (units x frames) of one stimulus and scan of a sweep output (a local
directory or s3://bucket/prefix), with the stimulus's frames above it, timed in seconds from the video's start
(``--skip-frames`` counted) and titled with whose weights made the responses."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from berg_ray.cli.options import add_one_session_option, add_output_option, add_s3_options
from berg_ray.config import ScanId
from berg_ray.errors import BergRayError
from berg_ray.storage import Store, open_store


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
    responses.add_argument("--stimuli", default=None, help="the sweep's --input (local or s3://), to show the "
                           "stimulus frames as the sweep read them (.npy, .npz or video files; default: no frames)")
    add_s3_options(responses, anonymous=True)
    add_output_option(responses, "PNG to write", "PNG", required=False, type=Path,
                      default_text="responses_<scan>_<stimulus>.png")
    responses.set_defaults(func=_run_plot_responses)
    return parser


@dataclass(frozen=True)
class ResponsePlot:
    """What ``plot responses`` draws for one stimulus and scan of a sweep output.

    Attributes:
        responses: float64 (T, U) per-frame responses (column u: readout index u).
        times_s: (T,) seconds from the video's start: row t is frame skip_frames + t, at (skip_frames + t) / 30.
        frames: uint8 (T, 144, 256) the frames shown at ``times_s``, as the sweep saw them (grey, 30 Hz, resized
            when the sweep used --resize), or None.
        weights: "generated weights" or "released weights" (recorded by the sweep), or None when not recorded.
        title: the figure title.
    """

    responses: np.ndarray
    times_s: np.ndarray
    frames: np.ndarray | None
    weights: str | None
    title: str


def read_response_plot(sweep_uri: str, stimulus_id: str, scan: str, stimuli: str | None = None,
                       s3_endpoint_url: str | None = None, anonymous: bool = False) -> ResponsePlot:
    """Read one stimulus and scan of a ``--reduce none`` sweep output (``berg_ray.outputs.load_sweep``) and, with
    ``stimuli`` (the sweep's input), that stimulus's frames read by the sweep's own reader (both read without
    credentials when ``anonymous``)."""
    from berg_ray.outputs import load_sweep

    scan = str(ScanId.parse(scan))
    output = load_sweep(sweep_uri, scans=[scan], stimuli=[stimulus_id], s3_endpoint_url=s3_endpoint_url,
                        anonymous=anonymous)
    if output.reduce != "none":
        raise BergRayError(f"{output.uri} holds mean responses (reduce={output.reduce!r}); a raster needs a sweep "
                           "run with --reduce none")
    if (stimulus_id, scan) not in output.responses:
        raise BergRayError(f"no row for stimulus {stimulus_id!r} and {scan} in {output.uri}; check --stimulus "
                           "(input path without suffix) and --sessions")
    responses = output.responses[(stimulus_id, scan)].astype(np.float64)
    frames = None
    if stimuli is not None:
        # resized: an input of another size has a row only if the sweep resized it, and resizing 144x256 frames
        # changes nothing (so _sweep.json no longer records --resize: berg_ray.sweep.layout.content_options)
        frames = read_stimulus_frames(_store(stimuli, s3_endpoint_url, anonymous), stimulus_id, output.skip_frames,
                                      responses.shape[0], resize=True)
    weights = output.units[scan].attrs.get("weights") if scan in output.units else None
    title = f"{scan}: responses to {stimulus_id} ({weights or 'weights not recorded in this output'})"
    return ResponsePlot(responses, output.times_s(stimulus_id, scan), frames, weights, title)


def read_stimulus_frames(stimuli: Store, stimulus_id: str, skip_frames: int, n_rows: int,
                         resize: bool) -> np.ndarray:
    """The uint8 (n_rows, 144, 256) frames of a sweep's input ``stimulus_id`` (any format a sweep reads) that its
    response rows cover: frames skip_frames .. skip_frames + n_rows - 1, decoded as the sweep decoded them."""
    from berg_ray.config import DEFAULT_SWEEP_MAX_FRAMES
    from berg_ray.sweep.pipeline import read_input
    from berg_ray.sweep.plan import list_stimuli

    listing = list_stimuli(stimuli)
    found = [s for s in listing.stimuli if s.stimulus_id == stimulus_id]
    if not found:
        problems = [e["error"] for e in listing.errors if e["stimulus_id"] == stimulus_id]
        raise BergRayError(problems[0] if problems else
                           f"{stimuli.uri} holds no input {stimulus_id!r} (.npy, .npz or a video file); --stimuli "
                           "must be the sweep's --input")
    expected = skip_frames + n_rows
    video = read_input(stimuli, found[0].name, resize, skip_frames, max(DEFAULT_SWEEP_MAX_FRAMES, expected)).video
    if video.shape[0] != expected:
        raise BergRayError(f"{stimuli.uri_of(found[0].name)} has {video.shape[0]} frames at 30 Hz, but the sweep's "
                           f"row covers {expected} ({skip_frames} skipped + {n_rows}): the input changed since the "
                           "sweep, or --stimuli is not the sweep's --input")
    return video[skip_frames:]


def _run_plot_responses(ns: argparse.Namespace) -> int:
    from berg_ray.experiments.figures import raster_figure

    scan = str(ScanId.parse(ns.session))
    plot = read_response_plot(ns.input, ns.stimulus, scan, ns.stimuli, ns.s3_endpoint_url, ns.anonymous)
    out = Path(ns.out) if ns.out else Path(f"responses_{scan}_{ns.stimulus.replace('/', '_')}.png")
    raster_figure(plot.responses, plot.frames, plot.title, out, plot.times_s)
    print(f"wrote {out}: {plot.responses.shape[1]} units x {plot.responses.shape[0]} frames "
          f"({plot.times_s[0]:.2f}-{plot.times_s[-1]:.2f} s of the video)")
    return 0


def _store(location: str, endpoint_url: str | None, anonymous: bool) -> Store:
    from berg_ray.storage.s3 import s3_options_for

    return open_store(location, s3_options_for(location, endpoint_url, anonymous))
