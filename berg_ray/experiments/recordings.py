"""Recorded responses for ``berg-ray evaluate``: the file layout, checked from the headers, then read.

Layout: one ``.npz`` per video (``numpy.savez`` or ``numpy.savez_compressed``); ``--recordings`` is a directory of
them (every ``*.npz`` directly in it, taken in order of file name) or one such file. Members:

- ``stimulus``: uint8 [T, 144, 256], the video as shown at 30 Hz (integer-valued numbers in [0, 255] of another
  dtype are accepted, as by ``BERG.encode``);
- ``responses``: real numbers [R, T, U], the R >= 1 recorded trials of the video, units in the scan's readout
  order (position u = ``readout_id`` u of units.csv, the order of the model's output); NaN marks a missing value;
- optional ``perspectives`` and/or ``modulations``: float [R, T, 2], each trial's behaviour in the model's
  standardised units (:mod:`berg_ray.behaviour`). When either is present, every trial is predicted with its own
  behaviour (the other input, if absent, is 0: the default).

No other member is allowed (a misspelt behaviour member would otherwise be ignored silently). Every file's
headers are checked before the model runs, so a bad file fails at once, not after the videos before it.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from berg_ray.behaviour import BEHAVIOUR_INPUTS, validate_behaviour
from berg_ray.config import FRAME_HEIGHT, FRAME_WIDTH
from berg_ray.errors import BergRayError, InvalidRecordingError
from berg_ray.validation.videos import validate_stimulus

STIMULUS, RESPONSES = "stimulus", "responses"
RECORDING_MEMBERS = (STIMULUS, RESPONSES, *BEHAVIOUR_INPUTS)


@dataclass(frozen=True)
class RecordingHeader:
    """What a recordings file declares: R trials of T frames, and which behaviour inputs it holds."""

    path: Path
    n_trials: int
    n_frames: int
    behaviour: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class RecordedVideo:
    """One video's stimulus, recorded trials and per-trial behaviour, checked.

    Attributes:
        path: the file.
        stimulus: uint8 (T, 144, 256).
        responses: (R, T, U) real numbers as stored (NaN: missing).
        behaviour: name -> float32 (R, T, 2) or None, for each of ``BEHAVIOUR_INPUTS``.
    """

    path: Path
    stimulus: np.ndarray
    responses: np.ndarray
    behaviour: dict[str, np.ndarray | None]

    @property
    def has_behaviour(self) -> bool:
        return any(value is not None for value in self.behaviour.values())


def recording_files(location: Path) -> list[Path]:
    """The ``.npz`` files of ``--recordings``: the file itself, or those directly in the directory, by name."""
    if location.is_dir():
        files = sorted(p for p in location.iterdir() if p.suffix.lower() == ".npz" and p.is_file())
        if not files:
            raise InvalidRecordingError(f"--recordings {location} holds no .npz file; save one per video with "
                                        f"members {STIMULUS!r} and {RESPONSES!r} (see berg-ray evaluate --help)")
        return files
    if not location.exists():
        raise InvalidRecordingError(f"--recordings {location} does not exist; give a .npz file or a directory of them")
    if location.suffix.lower() != ".npz":
        raise InvalidRecordingError(f"--recordings {location} is not a .npz file; save each video with numpy.savez")
    return [location]


def read_header(path: Path, n_units: int) -> RecordingHeader:
    """Check one file's members, shapes and dtypes from its headers (nothing of the data is read).

    Raises:
        InvalidRecordingError: unreadable file, unknown or missing member, wrong shape or dtype.
    """
    shapes = _member_headers(path)
    missing = [name for name in (STIMULUS, RESPONSES) if name not in shapes]
    if missing:
        raise InvalidRecordingError(f"{path}: lacks member(s) {missing}; a recordings file holds {STIMULUS!r} "
                                    f"[T, {FRAME_HEIGHT}, {FRAME_WIDTH}] and {RESPONSES!r} [R, T, U]")
    stimulus, responses = shapes[STIMULUS], shapes[RESPONSES]
    if len(stimulus) != 3 or stimulus[1:] != (FRAME_HEIGHT, FRAME_WIDTH) or stimulus[0] == 0:
        raise InvalidRecordingError(f"{path}: {STIMULUS} has shape {list(stimulus)}; expected one video [T, "
                                    f"{FRAME_HEIGHT}, {FRAME_WIDTH}] with T >= 1")
    frames = stimulus[0]
    if len(responses) != 3 or responses[0] == 0 or responses[1:] != (frames, n_units):
        raise InvalidRecordingError(f"{path}: {RESPONSES} has shape {list(responses)}; expected [R, T, U] = [R >= 1,"
                                    f" {frames}, {n_units}] (recorded trials, the stimulus's {frames} frames, the "
                                    f"scan's {n_units} units in readout order)")
    behaviour = tuple(name for name in BEHAVIOUR_INPUTS if name in shapes)
    for name in behaviour:
        if shapes[name] != (responses[0], frames, 2):
            raise InvalidRecordingError(f"{path}: {name} has shape {list(shapes[name])}; expected [R, T, 2] = "
                                        f"{[responses[0], frames, 2]} (one trace per recorded trial and frame)")
    return RecordingHeader(path, responses[0], frames, behaviour)


def read_recording(path: Path, n_units: int) -> RecordedVideo:
    """Read and check one file (see the module docstring)."""
    read_header(path, n_units)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except Exception as exc:  # truncated data, bad CRC: whatever zipfile / numpy raise
        raise InvalidRecordingError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc}); write it "
                                    "again with numpy.savez") from None
    responses = arrays[RESPONSES]
    try:
        videos, _ = validate_stimulus(arrays[STIMULUS])
        behaviour = {name: validate_behaviour(name, arrays.get(name), responses.shape[1], videos=responses.shape[0])
                     for name in BEHAVIOUR_INPUTS}
    except BergRayError as exc:
        raise InvalidRecordingError(f"{path}: {exc}") from None
    if responses.dtype.kind not in "uif":
        raise InvalidRecordingError(f"{path}: {RESPONSES} has dtype {responses.dtype}; store real numbers")
    return RecordedVideo(path, videos[0], responses, behaviour)


def _member_headers(path: Path) -> dict[str, tuple[int, ...]]:
    """member name -> shape, from each member's .npy header; refuses unknown members and pickled arrays."""
    try:
        with zipfile.ZipFile(path) as archive:
            shapes = {}
            for info in archive.infolist():
                name = info.filename.removesuffix(".npy")
                if name not in RECORDING_MEMBERS or not info.filename.endswith(".npy"):
                    raise InvalidRecordingError(f"{path}: unknown member {info.filename!r}; the members are "
                                                f"{', '.join(RECORDING_MEMBERS)} (the last two optional)")
                with archive.open(info) as member:
                    shapes[name] = _npy_shape(path, name, member)
            return shapes
    except InvalidRecordingError:
        raise
    except Exception as exc:  # not a zip, truncated, bad header
        raise InvalidRecordingError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc}); save each "
                                    "video with numpy.savez") from None


def _npy_shape(path: Path, name: str, member) -> tuple[int, ...]:
    version = np.lib.format.read_magic(member)
    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = reader(member)
    if dtype.hasobject or dtype.kind not in "uif":
        raise InvalidRecordingError(f"{path}: {name} has dtype {dtype}; store real numbers (uint8 pixels for "
                                    f"{STIMULUS})")
    return tuple(int(n) for n in shape)
