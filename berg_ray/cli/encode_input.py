"""Read the input file of ``berg-ray encode`` with the sweep's readers, so both read the same formats alike.

Every suffix a sweep reads (``berg_ray.sweep.video``): ``.npy``, ``.npz`` (member ``stimulus``, else ``video``,
else its one array; members ``perspectives`` / ``modulations`` are its behaviour) and ``.mp4`` / ``.avi`` /
``.mov`` / ``.mkv`` (PyAV: grey-scale luma, resampled to 30 Hz), each checked from its header first, never
unpickled; ``resize`` resizes other frame sizes bilinearly to 144 x 256, as ``sweep --resize`` does. Beyond a
sweep, a ``.npy`` may hold a batch [B, T, H, W] of equal-length videos (each read by the same rules).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from berg_ray.behaviour import BEHAVIOUR_INPUTS
from berg_ray.errors import BergRayError, InvalidVideoError
from berg_ray.validation.names import printable_name


def read_encode_input(path: Path, resize: bool, max_frames: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The video(s) of ``path`` and the behaviour it carries.

    Returns:
        (uint8 [T, 144, 256] or, from a batch .npy, [B, T, 144, 256]; {member: float32 [T, 2]} of a .npz's
        ``perspectives`` / ``modulations``, {} when it has none).

    Raises:
        BergRayError: a missing, empty or unreadable file, an unsupported suffix, wrong dimensions, colour frames,
            another frame size without ``resize``, or more than ``max_frames`` frames; one line naming the fix.
    """
    from berg_ray.sweep.pipeline import read_file
    from berg_ray.sweep.video import SUPPORTED_SUFFIXES

    shown = printable_name(str(path))
    if path.is_dir():
        raise BergRayError(f"input {shown} is a directory; give one video file (berg-ray sweep reads directories)")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise BergRayError(f"input {shown} has the unsupported file type {suffix or '(no suffix)'!r}; berg-ray "
                           f"encode reads {', '.join(SUPPORTED_SUFFIXES)} (the formats berg-ray sweep reads)")
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise BergRayError(f"input {shown} does not exist") from None
    except OSError as exc:
        raise BergRayError(f"cannot read input {shown} ({exc.strerror or exc})") from None
    with handle:
        if path.stat().st_size == 0:
            raise BergRayError(f"input {shown} is empty (0 bytes); write the video again")
        if suffix == ".npy":
            if zipfile.is_zipfile(handle):
                raise BergRayError(f"input {shown} is an .npz archive (a zip file) named .npy; rename it to .npz")
            handle.seek(0)
            return _read_npy(shown, handle, resize, max_frames), {}
        item = read_file(str(path), handle, resize, skip_frames=0, max_frames=max_frames)
    return item.video, {key: value for key, value in zip(BEHAVIOUR_INPUTS, item.behaviour) if value is not None}


def _read_npy(shown: str, handle, resize: bool, max_frames: int) -> np.ndarray:
    """A .npy video [T, H, W] or batch [B, T, H, W], each video read as a sweep reads a .npy."""
    from berg_ray.sweep.arrays import read_array, wrong_dimensions
    from berg_ray.sweep.video import array_frames

    frames = read_array(shown, handle, ".npy", max_frames, ndims=(3, 4))
    if frames.ndim == 3:
        return array_frames(shown, frames, resize, max_frames)
    if frames.shape[-1] in (3, 4):  # [T, H, W, 3]: colour, which sweeps refuse too
        raise wrong_dimensions(shown, frames.shape)
    if frames.shape[0] == 0:
        raise InvalidVideoError(f"{shown}: the batch {tuple(frames.shape)} holds no videos; save at least one")
    return np.stack([array_frames(f"{shown} (video {index})", video, resize, max_frames)
                     for index, video in enumerate(frames)])
