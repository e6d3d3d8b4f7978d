"""The ``berg-ray`` command: flags -> validated arguments -> the package's functions.

Subcommands: ``encode`` (one video file through one scan), ``demo-release`` (write a generated release),
``demo`` (the README's main job), ``serve`` (Ray Serve service), ``sweep`` (Ray Data sweep), ``download``
(the trained release), ``experiment`` (in-silico experiments), ``evaluate`` (prediction accuracy against recorded
responses) and ``plot`` (figures of sweep outputs). Options shared by several subcommands are defined once, in
:mod:`berg_ray.cli.options`; every parser is a :class:`~berg_ray.cli.parser.BergRayParser`. Every user error, argparse's
own included, prints one line ``error: ...`` and exits with status 2; no traceback. ``--help`` of every subcommand
shows each option's default; ``--version`` prints the package's version. Importing this module (through
the package) sets the OpenMP wait policy before torch loads (:mod:`berg_ray.runtime.threads`); commands that
compute here set torch's threads from the CPUs available.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from berg_ray.cli.options import (add_device_options, add_one_session_option, add_output_option,
                                  add_release_options, add_sessions_option, add_verbosity_options,
                                  add_video_input_options, release_dir)
from berg_ray.cli.parser import EXIT_USER_ERROR, BergRayParser
from berg_ray.config import (DEFAULT_CHUNK_FRAMES, DEFAULT_SWEEP_MAX_FRAMES, DEMO_WORK_DIR, ECHO_CHARS, MODEL_ID, ROIS,
                             ScanId)
from berg_ray.cli.encode_input import read_encode_input
from berg_ray.errors import BergRayError
from berg_ray.validation.names import printable_name
from berg_ray.validation.numbers import ascii_int, int_flag
from berg_ray.storage.paths import check_output_dir, check_output_file
from berg_ray.storage.publish import publish_file
from berg_ray.sweep.preflight import scans_present


def build_parser() -> argparse.ArgumentParser:
    parser = BergRayParser(prog="berg-ray", description=f"Run {MODEL_ID} (Wang et al., Nature 2025).")
    parser.add_argument("--version", action="version", version=f"berg-ray {package_version()}",
                        help="print the version of berg_ray and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_encode(commands)
    _add_demo_release(commands)
    _add_demo(commands)
    from berg_ray.experiments.cli import add_experiment_command
    from berg_ray.experiments.evaluate_cli import add_evaluate_command
    from berg_ray.experiments.plot_cli import add_plot_command
    from berg_ray.serve.cli import add_serve_command
    from berg_ray.sweep.cli import add_sweep_command

    add_serve_command(commands)
    add_sweep_command(commands)
    from berg_ray.download.cli import add_download_command

    add_download_command(commands)
    add_experiment_command(commands)
    add_evaluate_command(commands)
    add_plot_command(commands)
    return parser


def package_version() -> str:
    """The installed berg_ray's version (pyproject.toml's ``version``)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("berg_ray")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _add_encode(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("encode", help="predict responses to one video file (.npy, .npz, .mp4, .avi, .mov, "
                                           ".mkv)",
                            description="Predict responses of one scan's units to one video file, read as berg-ray "
                                        "sweep reads it: .npy (uint8 [T,144,256], or a batch [B,T,144,256]), .npz "
                                        "(member stimulus or video, with optional perspectives/modulations), or "
                                        ".mp4/.avi/.mov/.mkv (grey-scale, resampled to 30 Hz).")
    add_release_options(p, anonymous=True)
    add_one_session_option(p)
    p.add_argument("--input", required=True, type=Path,
                   help="video file: .npy, .npz, .mp4, .avi, .mov or .mkv, frames of 144x256 (else --resize)")
    add_video_input_options(p)
    p.add_argument("--max-frames", type=int_flag, default=DEFAULT_SWEEP_MAX_FRAMES,
                   help=f"most frames at 30 Hz per video ({DEFAULT_SWEEP_MAX_FRAMES} = 10 min); checked from the "
                        "file's header before it is read")
    add_output_option(p, ".npy file for float32 responses [T,U] / [B,T,U]", "FILE", type=Path,
                      deprecated=("--output",))
    p.add_argument("--behaviour", type=Path,
                   help=".npz with members perspectives and/or modulations, float [T,2] ([B,T,2] for a batch), "
                        "standardised (berg_ray.behaviour.standardise); default: those of an .npz --input, else "
                        "none (0)")
    p.add_argument("--roi", action="append", choices=ROIS,
                   help="select units of this area (repeatable; default: all units)")
    p.add_argument("--field", action="append", type=int_flag,
                   help="select units of this imaging field (repeatable; default: all units)")
    add_device_options(p, ray=False)
    p.add_argument("--chunk-frames", type=int_flag, default=DEFAULT_CHUNK_FRAMES,
                   help="frames per chunk; memory grows with it, results do not depend on it")
    add_verbosity_options(p, verbose=False, deprecated_progress=True)
    p.set_defaults(func=_run_encode)


def _add_demo_release(commands: argparse._SubParsersAction) -> None:
    from berg_ray.checkpoint.demo import DEMO_UNITS

    p = commands.add_parser("demo-release", help="write a generated release (random weights) in the BERG layout",
                            description="Write all release files with the real keys and shapes and seeded random "
                                        "weights, so everything runs without downloading the trained weights.")
    add_output_option(p, "directory to write (the berg_dir); must be absent or empty unless --force", "DIR",
                      type=Path)
    add_sessions_option(p)
    p.add_argument("--units", default=str(DEMO_UNITS), help="units per scan, or 'release' for the released unit counts")
    p.add_argument("--seed", type=int_flag, default=0, help="random seed of the weights and metadata (same seed, same "
                                                       "files)")
    p.add_argument("--force", action="store_true",
                   help="replace a non-empty --out completely (the old contents are removed)")
    p.set_defaults(func=_run_demo_release)


def _add_demo(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("demo", help="the main job on built-in demo data (no downloads, no GPU)")
    add_output_option(p, "directory the demo's files are written to", "DIR", required=False,
                      default=Path(DEMO_WORK_DIR), type=Path, deprecated=("--work-dir",))
    add_verbosity_options(p, quiet=False)
    p.set_defaults(func=_run_demo)


def _run_encode(args: argparse.Namespace) -> int:
    from berg_ray.berg_api import BERG
    from berg_ray.runtime.threads import set_torch_threads

    set_torch_threads()
    if args.max_frames < 1:
        raise BergRayError(f"--max-frames {args.max_frames} must be a positive number of frames")
    stimulus, behaviour = read_encode_input(args.input, args.resize, args.max_frames)
    if args.behaviour is not None:
        given = _read_behaviour(args.behaviour, stimulus.shape)
        twice = [key for key in given if key in behaviour]
        if twice:
            raise BergRayError(f"{' and '.join(twice)} given twice: by --input {args.input} (its .npz members) and "
                               f"by --behaviour {args.behaviour}; keep one (drop --behaviour, or the members)")
        behaviour.update(given)
    check_output_file(args.out, "--out")
    selection = {k: v for k, v in (("roi", args.roi), ("field", args.field)) if v}
    berg = BERG(release_dir(args))
    scans_present(str(berg.berg_dir), [args.session], None, "--sessions")  # before the model loads
    model = berg.get_encoding_model(MODEL_ID, train_session=args.session, selection=selection or None,
                                    device=args.device, chunk_frames=args.chunk_frames, precision=args.precision)
    show_progress = not args.quiet and (args.progress or sys.stderr.isatty())  # no bar in logs unless asked
    responses = berg.encode(model, stimulus, show_progress=show_progress, **behaviour)
    write_npy_atomic(args.out, responses)
    print(f"wrote {args.out}: float32 {list(responses.shape)} ({model.scan_id}, {model.n_units} units)")
    return 0


def _run_demo_release(args: argparse.Namespace) -> int:
    from berg_ray.checkpoint.demo import write_demo_release

    scans = None if args.sessions.strip() == "all" else [s for s in args.sessions.split(",") if s.strip()]
    if scans == []:
        raise BergRayError(f"--sessions {args.sessions!r} names no scan; give 'all' or comma-separated scans such "
                           "as session-8_scan-5,session-4_scan-7")
    for scan in scans or ():
        ScanId.parse(scan)
    n_units = None if args.units == "release" else ascii_int(args.units)
    if args.units != "release" and (n_units or 0) <= 0:
        raise BergRayError(f"--units {args.units[:ECHO_CHARS]!r} is not a positive integer (ASCII digits) or 'release'")
    check_output_dir(args.out, "--out")
    try:
        root = write_demo_release(args.out, scans, n_units, args.seed, force=args.force)
    except OSError as exc:
        raise BergRayError(f"cannot write the release to --out {args.out} ({exc}); choose a writable directory") \
            from None
    print(f"wrote a generated release to {root}")
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    from berg_ray.demo import run_demo

    return run_demo(args.out, verbose=args.verbose)


def _read_behaviour(path: Path, stimulus_shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """The ``perspectives`` / ``modulations`` members of the ``--behaviour`` .npz, checked against the stimulus
    ([T, 2] for a [T, 144, 256] stimulus, [B, T, 2] for [B, T, 144, 256]); BergRayError naming the file otherwise."""
    from berg_ray.behaviour import BEHAVIOUR_INPUTS, validate_behaviours

    shown = f"--behaviour {path}"
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise BergRayError(f"{shown} does not exist") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise BergRayError(f"{shown} is not a readable .npz file ({type(exc).__name__}: {exc}); save it with "
                           "numpy.savez(FILE, perspectives=..., modulations=...)") from None
    if isinstance(archive, np.ndarray):
        raise BergRayError(f"{shown} is one .npy array; save the behaviour with numpy.savez(FILE, "
                           "perspectives=..., modulations=...) so each input is named")
    with archive:
        unknown = [key for key in archive.files if key not in BEHAVIOUR_INPUTS]
        if unknown or not archive.files:
            raise BergRayError(f"{shown} holds {unknown or 'no arrays'}" + (" (unknown members)" if unknown else "")
                               + f"; its members are {' and/or '.join(BEHAVIOUR_INPUTS)}, float [T, 2]")
        try:
            members = {key: archive[key] for key in archive.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # pickled objects, a damaged member
            raise BergRayError(f"{shown}: a member is not a readable array ({type(exc).__name__}: {exc})") from None
    if len(stimulus_shape) in (3, 4):  # else berg.encode refuses the stimulus itself
        try:
            validate_behaviours(members, stimulus_shape[-3], stimulus_shape[0] if len(stimulus_shape) == 4 else None)
        except BergRayError as exc:
            raise BergRayError(f"{shown}: {exc}") from None
    return members


def write_npy_atomic(path: Path, array: np.ndarray) -> None:
    """Write ``array`` as .npy so that ``path`` appears only complete (``berg_ray.storage.publish.publish_file``)."""
    publish_file(path, lambda file: np.save(file, array))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``berg-ray`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BergRayError as exc:
        print(f"error: {printable_name(str(exc))}", file=sys.stderr)  # one line: a name cannot forge another
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
