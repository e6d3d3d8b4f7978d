"""Pre-flight of a sweep: everything that can be checked before Ray starts and before anything is written.

``check_options`` validates the options (plain messages naming each option, as its command-line flag where it came
from the command line) and the scans against the release, listing the scans it holds; ``wrong_sized`` reads the
frame size of each input still to compute from its header alone (a video container's stream, a ``.npy`` header,
a ``.npz`` member's header: a bounded read, ranged on S3), so inputs of another size than 144x256 without
``resize`` are refused in seconds rather than after Ray's start-up. Every command that runs a sweep (``sweep``,
``experiment ...``) calls ``check_options`` first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import PurePosixPath

from pydantic import ValidationError

from berg_ray.config import (ECHO_CHARS, FRAME_HEIGHT, FRAME_WIDTH, SWEEP_HEADER_THREADS, SWEEP_SHOWN_INPUTS,
                             VIDEO_SUFFIXES, ScanId, SweepArgs)
from berg_ray.download import resolve_berg_dir
from berg_ray.errors import (BergRayError, InvalidSessionError, InvalidVideoError, ScanNotAvailableError,
                             validation_summary)
from berg_ray.validation.names import printable_name
from berg_ray.storage import S3Options, Store, resolve_s3_options
from berg_ray.sweep.plan import Stimulus


def validate_args(options: dict, names: Mapping[str, str] | None = None, flags: bool = False) -> SweepArgs:
    """SweepArgs from keyword options; invalid ones raise one BergRayError naming each option and what it allows
    (``names`` / ``flags``: how to call the options, see :func:`berg_ray.errors.validation_summary`)."""
    try:
        return SweepArgs(**options)
    except ValidationError as exc:
        raise BergRayError(f"invalid options: {validation_summary(exc, names, flags)}") from None


def check_options(options: dict, names: Mapping[str, str] | None = None,
                  flags: bool = False) -> tuple[SweepArgs, list[str]]:
    """The validated options and the canonical scans to compute, checked against the release.

    Raises:
        BergRayError: an invalid option; ScanNotAvailableError: a scan that is malformed or not in the release
            (the message lists the scans the release holds).
    """
    sessions, berg_dir = options.get("sessions", "all"), options.get("berg_dir")
    session_flag = (names or {}).get("sessions", "--sessions" if flags else "sessions")
    endpoint, anonymous = options.get("s3_endpoint_url"), options.get("anonymous", False)
    if (isinstance(berg_dir, str) and isinstance(endpoint, (str, type(None))) and isinstance(sessions, list)
            and all(isinstance(s, str) for s in sessions) and isinstance(anonymous, bool)):
        # first, so a wrong scan is refused with the scans this release holds (not all 13 of the paper)
        scans_present(berg_dir, sessions, resolve_s3_options(endpoint, anonymous=anonymous), session_flag)
    args = validate_args(options, names, flags)
    return args, resolve_scans(args, session_flag)


def resolve_scans(args: SweepArgs, flag: str = "sessions") -> list[str]:
    """The canonical scans of ``args.sessions`` ('all': every scan the release holds), each present."""
    return scans_present(args.berg_dir, args.sessions, release_s3(args), flag)


def scans_present(berg_dir: str, sessions: Sequence[str] | str, s3: S3Options, flag: str) -> list[str]:
    """``sessions`` as canonical scans, refused unless each is a well-formed scan of the release in berg_dir."""
    from berg_ray.checkpoint.release import available_scans

    present = [str(s) for s in available_scans(resolve_berg_dir(berg_dir, s3))]
    listed = "; scans in this release: " + (", ".join(present) or "none")
    if sessions == "all":
        if not present:
            raise ScanNotAvailableError(f"{berg_dir} holds no scan's weights{listed}")
        return present
    wanted, bad = [], []
    for session in sessions:
        try:
            canonical = str(ScanId.parse(session))
        except InvalidSessionError:
            canonical = None
        (wanted if canonical in present else bad).append(canonical or session.strip())
    if bad or not wanted:
        problem = (f"names {', '.join(repr(s[:ECHO_CHARS]) for s in bad)}, not a scan in {berg_dir}" if bad
                   else "names no scan")
        raise ScanNotAvailableError(f"{flag} {problem}{listed} (write scans as session-X_scan-Y, comma-separated, "
                                    f"or 'all')")
    return list(dict.fromkeys(wanted))


def release_s3(args: SweepArgs) -> S3Options:
    """How the driver and the encoder actors reach a ``--berg-dir s3://...`` release (unsigned with ``anonymous``,
    as the input)."""
    return resolve_s3_options(args.s3_endpoint_url, anonymous=args.anonymous)


def wrong_sized(store: Store, stimuli: Sequence[Stimulus]) -> dict[str, InvalidVideoError]:
    """stimulus id -> its error, for each input whose header declares frames of another size than 144x256.

    Only headers are read (SWEEP_HEADER_THREADS at a time); an input whose header cannot be read or declares no
    size is left to the decoder, which reports it as before."""
    with ThreadPoolExecutor(SWEEP_HEADER_THREADS) as pool:
        sizes = list(pool.map(lambda s: header_frame_size(store, s.name), stimuli))
    return {s.stimulus_id: InvalidVideoError(f"{printable_name(s.name)}: frames are {size[0]}x{size[1]} pixels; "
                                             f"expected {FRAME_HEIGHT}x{FRAME_WIDTH} (or pass --resize)")
            for s, size in zip(stimuli, sizes) if size is not None and size != (FRAME_HEIGHT, FRAME_WIDTH)}


def refuse_all(wrong: Mapping[str, InvalidVideoError]) -> InvalidVideoError:
    """The error of a run whose every input to compute has another frame size (nothing is started or written)."""
    shown = "; ".join(str(exc).split(" (or pass")[0] for exc in list(wrong.values())[:SWEEP_SHOWN_INPUTS])
    more = f"; and {len(wrong) - SWEEP_SHOWN_INPUTS} more" if len(wrong) > SWEEP_SHOWN_INPUTS else ""
    return InvalidVideoError(f"every input to compute has frames of another size than {FRAME_HEIGHT}x{FRAME_WIDTH} "
                             f"({shown}{more}); pass --resize to resize them (bilinear), or convert them")


def header_frame_size(store: Store, name: str) -> tuple[int, int] | None:
    """(height, width) of an input's frames from its header, or None when it cannot be read from one."""
    suffix = PurePosixPath(name).suffix.lower()
    try:
        with store.open_read(name) as handle:
            if suffix in VIDEO_SUFFIXES:
                return _video_size(handle)
            from berg_ray.sweep.arrays import header_shape

            shape = header_shape(name, handle, suffix)
    except Exception:  # unreadable or malformed: the decoder reports it with its own message
        return None
    return (int(shape[1]), int(shape[2])) if shape is not None and len(shape) == 3 else None


def _video_size(handle) -> tuple[int, int] | None:
    import av

    with av.open(handle, mode="r") as container:
        if not container.streams.video:
            return None
        stream = container.streams.video[0]
        height, width = stream.codec_context.height, stream.codec_context.width
        return (int(height), int(width)) if height and width else None
