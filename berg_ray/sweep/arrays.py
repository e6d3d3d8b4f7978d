"""Read the array of a ``.npy`` or ``.npz`` sweep input, checking its header before its data.

A ``.npy`` header (``numpy.lib.format``: magic, version, then shape and dtype) is a few hundred bytes at the
start of the file; a ``.npz`` is a zip whose central directory lists each member's unpacked size, and each member
is a ``.npy`` whose header is its first bytes. So an array with more than ``max_frames`` frames, the wrong number
of dimensions, or more data declared than the file holds, is refused after reading a bounded prefix (a zip member
is inflated only as far as its header), before anything of its size is read or allocated. Pickled (object)
arrays are refused from the header too.

A ``.npz`` may also carry the behaviour of its video (``read_behaviour``): members ``perspectives`` and/or
``modulations``, float [T, 2]; the video is then the member ``stimulus`` (or ``video``). Their headers are checked
the same way (at most ``max_frames`` x 2 values), and a member whose name is close to one of them but not it
(``perspective``, ``Modulations``) is refused rather than ignored.
"""

from __future__ import annotations

import difflib
import io
import zipfile
from collections.abc import Callable
from typing import BinaryIO

import numpy as np

from berg_ray.behaviour import BEHAVIOUR_INPUTS
from berg_ray.config import FRAME_HEIGHT, FRAME_RATE_HZ, FRAME_WIDTH, NPZ_STIMULUS_KEY, NPZ_VIDEO_KEY
from berg_ray.errors import InvalidBehaviourError, InvalidVideoError

MAX_ITEM_BYTES = 8  # widest accepted pixel type (float64/int64 integer values): bounds a .npz member's size


def too_long(name: str, n_frames: int, max_frames: int, at_least: bool = False) -> InvalidVideoError:
    """The error of a stimulus with ``n_frames`` (at 30 Hz) > ``max_frames``."""
    return InvalidVideoError(
        f"{name}: {'at least ' if at_least else ''}{n_frames} frames at {FRAME_RATE_HZ:g} Hz "
        f"({n_frames / FRAME_RATE_HZ:.1f} s), more than max_frames={max_frames}; cut it into shorter stimuli or "
        f"raise --max-frames")


def wrong_dimensions(name: str, shape: tuple[int, ...]) -> InvalidVideoError:
    """The error of an array that is not [T, H, W]; colour frames [T, H, W, 3 or 4] are told how to convert."""
    expected = (f"{name}: array has shape {tuple(shape)}; expected [T, {FRAME_HEIGHT}, {FRAME_WIDTH}] grey-scale "
                "frames")
    if len(shape) == 4 and shape[-1] in (3, 4):
        return InvalidVideoError(
            f"{expected}, not colour [T, H, W, {shape[-1]}]: convert them first, e.g. numpy.rint(video[..., :3] @ "
            f"[0.299, 0.587, 0.114]).astype(numpy.uint8) (BT.601 luma), or save the video as .mp4 (converted to "
            f"grey on reading)")
    return InvalidVideoError(expected)


def read_array(name: str, handle: BinaryIO, suffix: str, max_frames: int, ndims: tuple[int, ...] = (3,)
               ) -> np.ndarray:
    """The array of a .npy, or the video of a .npz (see ``video_member``), read without pickle.

    Args:
        name: file name for messages.
        handle: the whole file, seekable, positioned at its start.
        suffix: ".npy" or ".npz".
        max_frames: most frames (dimension -3: T of [T, H, W] and of a batch [B, T, H, W]) accepted; checked
            from the header.
        ndims: numbers of dimensions accepted (``berg-ray encode`` also reads a batch [B, T, H, W] .npy).

    Raises:
        InvalidVideoError: unreadable, truncated, pickled, of another number of dimensions, or longer than
            ``max_frames``.
    """
    def check(shape: tuple[int, ...]) -> None:
        if len(shape) not in ndims:
            raise wrong_dimensions(name, shape)
        if shape[-3] > max_frames:
            raise too_long(name, shape[-3], max_frames)

    max_bytes = max_frames * FRAME_HEIGHT * FRAME_WIDTH * MAX_ITEM_BYTES
    return _readable(name, suffix, lambda: _read_npy(name, handle, check, available=None) if suffix == ".npy"
                     else _read_npz_member(name, handle, video_member, max_bytes, check))


def header_shape(name: str, handle: BinaryIO, suffix: str) -> tuple[int, ...]:
    """The shape the header of a .npy, or of a .npz's video member (``video_member``), declares; only the header
    is read (a zip member is inflated only as far as its .npy header).

    Raises:
        InvalidVideoError: no readable header (or no video member).
    """
    seen: list[tuple[int, ...]] = []

    def stop(shape: tuple[int, ...]) -> None:
        seen.append(shape)
        raise _HeaderRead

    try:
        _read_npy(name, handle, stop, available=None) if suffix == ".npy" else \
            _read_npz_member(name, handle, video_member, None, stop)
    except _HeaderRead:
        return seen[0]
    raise InvalidVideoError(f"{name}: no array header")  # not reached: the reader calls stop or raises


class _HeaderRead(Exception):
    """Stops a reader once its header is checked (header_shape)."""


def read_behaviour(name: str, handle: BinaryIO, max_frames: int) -> dict[str, np.ndarray]:
    """The behaviour members (``perspectives``, ``modulations``) a .npz holds, as stored (validated later against
    the video, ``berg_ray.behaviour.validate_behaviour``); {} when it holds none.

    Raises:
        InvalidBehaviourError: a member of more than ``max_frames`` x 2 values, or a misspelt one.
        InvalidVideoError: an unreadable, truncated or pickled member.
    """
    handle.seek(0)
    with zipfile.ZipFile(handle) as archive:
        present = [key for key in BEHAVIOUR_INPUTS if key in _members(archive)]
    found = {}
    for key in present:
        def check(shape: tuple[int, ...], key: str = key) -> None:
            if int(np.prod(shape, dtype=object)) > max_frames * 2:
                raise InvalidBehaviourError(f"{name}: member {key!r} has shape {list(shape)}, more than "
                                            f"max_frames={max_frames} rows of 2; expected [T, 2], T = the video's "
                                            "frames")

        handle.seek(0)
        found[key] = _readable(name, ".npz", lambda: _read_npz_member(name, handle, lambda _, m: m[key], None,
                                                                      check))
    return found


def video_member(name: str, members: dict[str, zipfile.ZipInfo]) -> zipfile.ZipInfo:
    """The video of a .npz: ``stimulus``, else ``video``, else its one array that is not a behaviour input.

    Raises:
        InvalidVideoError: no such member, or a member named almost like a behaviour input.
    """
    for key in members:
        close = difflib.get_close_matches(key.lower(), BEHAVIOUR_INPUTS, n=1, cutoff=0.8)
        if close and key not in BEHAVIOUR_INPUTS:
            raise InvalidVideoError(f"{name}: member {key!r} is not an input; name the behaviour {close[0]!r} "
                                    f"(inputs beside the video: {', '.join(BEHAVIOUR_INPUTS)})")
    for key in (NPZ_STIMULUS_KEY, NPZ_VIDEO_KEY):
        if key in members:
            return members[key]
    others = [key for key in members if key not in BEHAVIOUR_INPUTS]
    if len(others) != 1:
        raise InvalidVideoError(f"{name}: .npz holds arrays {list(members)}; store one array, or name the video "
                                f"{NPZ_VIDEO_KEY!r} or {NPZ_STIMULUS_KEY!r} (beside it: "
                                f"{', '.join(BEHAVIOUR_INPUTS)})")
    return members[others[0]]


def _readable(name: str, suffix: str, read: Callable[[], np.ndarray]) -> np.ndarray:
    try:
        return read()
    except (InvalidVideoError, InvalidBehaviourError):
        raise
    except Exception as exc:  # truncated, not numpy, bad CRC, pickled objects: whatever numpy/zipfile raise
        raise InvalidVideoError(f"{name}: not a readable {suffix} file ({type(exc).__name__}: {exc}); save uint8 "
                                f"frames with numpy.{'save' if suffix == '.npy' else 'savez'}") from None


def _read_npy(name: str, handle: BinaryIO, check: Callable[[tuple[int, ...]], None],
              available: int | None) -> np.ndarray:
    """Check the header at the handle's position (``check`` its shape), then read the array.

    ``available``: bytes of the whole .npy (header included); None: up to the end of ``handle`` (seekable).
    """
    start = handle.tell()
    version = np.lib.format.read_magic(handle)
    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = reader(handle)
    if dtype.hasobject:
        raise InvalidVideoError(f"{name}: holds Object arrays (pickled Python objects), which are never loaded; save "
                                f"uint8 frames with numpy.save")
    check(shape)
    header_bytes = handle.tell() - start
    held = (available if available is not None else handle.seek(0, io.SEEK_END) - start) - header_bytes
    declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if declared > held:
        raise InvalidVideoError(f"{name}: the header declares {declared} bytes of {dtype} data of shape {shape}, "
                                f"but the file holds {held}; it is truncated: write it again")
    handle.seek(start)
    return np.lib.format.read_array(handle, allow_pickle=False)


def _members(archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    return {info.filename.removesuffix(".npy"): info for info in archive.infolist()}


def _read_npz_member(name: str, handle: BinaryIO, choose: Callable[[str, dict], zipfile.ZipInfo],
                     max_bytes: int | None, check: Callable[[tuple[int, ...]], None]) -> np.ndarray:
    """The chosen member's declared unpacked size (at most ``max_bytes`` of video; None: not checked, the header
    ``check`` bounds the data) and its .npy header are checked before it is inflated (a small archive may unpack
    to gigabytes; only the data its header declares is inflated)."""
    with zipfile.ZipFile(handle) as archive:
        info = choose(name, _members(archive))
        if not info.filename.endswith(".npy"):
            raise InvalidVideoError(f"{name}: member {info.filename!r} is not a .npy array; write the file with "
                                    f"numpy.savez")
        if max_bytes is not None and info.file_size > max_bytes:
            raise InvalidVideoError(f"{name}: member {info.filename!r} unpacks to {info.file_size} bytes, more "
                                    f"than {max_bytes} (max_frames frames of {FRAME_HEIGHT}x{FRAME_WIDTH} "
                                    f"pixels of up to {MAX_ITEM_BYTES} bytes); cut it into shorter stimuli or "
                                    f"raise --max-frames")
        with archive.open(info) as member:  # inflated as it is read: the header check reads its first block
            return _read_npy(name, member, check, available=info.file_size)
