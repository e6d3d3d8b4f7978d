"""The ``berg-ray`` command: flags -> validated arguments -> the package's functions.

Subcommands: ``encode`` (one video file through one scan), ``demo-release`` (write a generated release),
``demo`` (the README's main job), ``serve`` (Ray Serve service), ``sweep`` (Ray Data sweep), ``experiment``
(in-silico experiments) and ``plot`` (figures of sweep outputs). Every user error prints one line ``error: ...``
and exits with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from berg_ray.config import DEFAULT_CHUNK_FRAMES, MODEL_ID, ROIS
from berg_ray.errors import BergRayError

EXIT_USER_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="berg-ray", description=f"Run {MODEL_ID} (Wang et al., Nature 2025).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_encode(commands)
    _add_demo_release(commands)
    _add_demo(commands)
    from berg_ray.experiments.cli import add_experiment_command
    from berg_ray.experiments.plot_cli import add_plot_command
    from berg_ray.serve.cli import add_serve_command
    from berg_ray.sweep.cli import add_sweep_command

    add_serve_command(commands)
    add_sweep_command(commands)
    add_experiment_command(commands)
    add_plot_command(commands)
    return parser


def _add_encode(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("encode", help="predict responses to one video file (.npy, uint8 [T,144,256])",
                            description="Predict responses of one scan's units to a video saved as .npy.")
    p.add_argument("--berg-dir", required=True, type=Path, help="BERG data directory (release layout)")
    p.add_argument("--session", required=True, help="train session, e.g. session-8_scan-5")
    p.add_argument("--input", required=True, type=Path, help=".npy video, uint8 [T,144,256] or [B,T,144,256]")
    p.add_argument("--output", required=True, type=Path, help=".npy file for float32 responses [T,U] / [B,T,U]")
    p.add_argument("--roi", action="append", choices=ROIS, help="select units of this area (repeatable)")
    p.add_argument("--field", action="append", type=int, help="select units of this imaging field (repeatable)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    p.add_argument("--chunk-frames", type=int, default=DEFAULT_CHUNK_FRAMES, help="frames per chunk (memory)")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    p.set_defaults(func=_run_encode)


def _add_demo_release(commands: argparse._SubParsersAction) -> None:
    from berg_ray.checkpoint.demo import DEMO_UNITS

    p = commands.add_parser("demo-release", help="write a generated release (random weights) in the BERG layout",
                            description="Write all release files with the real keys and shapes and seeded random "
                                        "weights, so everything runs without downloading the trained weights.")
    p.add_argument("--out", required=True, type=Path, help="directory to write (the berg_dir)")
    p.add_argument("--sessions", default="all", help="comma-separated scans, or 'all' (default)")
    p.add_argument("--units", default=str(DEMO_UNITS),
                   help=f"units per scan (default {DEMO_UNITS}), or 'release' for the released unit counts")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_run_demo_release)


def _add_demo(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("demo", help="the main job on built-in demo data (no downloads, no GPU)")
    p.add_argument("--work-dir", type=Path, default=Path("demo-output"), help="where demo files are written")
    p.set_defaults(func=_run_demo)


def _run_encode(args: argparse.Namespace) -> int:
    from berg_ray.berg_api import BERG

    stimulus = _read_npy(args.input)
    selection = {k: v for k, v in (("roi", args.roi), ("field", args.field)) if v}
    berg = BERG(args.berg_dir)
    model = berg.get_encoding_model(MODEL_ID, train_session=args.session, selection=selection or None,
                                    device=args.device, chunk_frames=args.chunk_frames)
    responses = berg.encode(model, stimulus, show_progress=args.progress)
    write_npy_atomic(args.output, responses)
    print(f"wrote {args.output}: float32 {list(responses.shape)} ({model.scan_id}, {model.n_units} units)")
    return 0


def _run_demo_release(args: argparse.Namespace) -> int:
    from berg_ray.checkpoint.demo import write_demo_release

    scans = None if args.sessions.strip() == "all" else [s for s in args.sessions.split(",") if s.strip()]
    if args.units == "release":
        n_units = None
    elif args.units.isdigit() and int(args.units) > 0:
        n_units = int(args.units)
    else:
        raise BergRayError(f"--units {args.units!r} is not a positive integer or 'release'")
    root = write_demo_release(args.out, scans, n_units, args.seed)
    print(f"wrote a generated release to {root}")
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    from berg_ray.demo import run_demo

    return run_demo(args.work_dir)


def _read_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise BergRayError(f"input {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise BergRayError(f"input {path} is not a readable .npy array ({exc}); save it with numpy.save") from None


def write_npy_atomic(path: Path, array: np.ndarray) -> None:
    """Write ``array`` as .npy so that ``path`` appears only complete (temp file in the same dir, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            np.save(file, array)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``berg-ray`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BergRayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
