"""Read the array of a ``.npy`` or ``.npz`` sweep input, checking its header before its data.

A ``.npy`` header (``numpy.lib.format``: magic, version, then shape and dtype) is a few hundred bytes at the
start of the file; a ``.npz`` is a zip whose central directory lists each member's unpacked size, and each member
is a ``.npy`` whose header is its first bytes. So an array with more than ``max_frames`` frames, the wrong number
of dimensions, or more data declared than the file holds, is refused after reading a bounded prefix (a zip member
is inflated only as far as its header), before anything of its size is read or allocated. Pickled (object)
arrays are refused from the header too.
"""

from __future__ import annotations

import io
import zipfile
from typing import BinaryIO

import numpy as np

from berg_ray.config import FRAME_HEIGHT, FRAME_RATE_HZ, FRAME_WIDTH, NPZ_VIDEO_KEY
from berg_ray.errors import InvalidVideoError

MAX_ITEM_BYTES = 8  # widest accepted pixel type (float64/int64 integer values): bounds a .npz member's size


def too_long(name: str, n_frames: int, max_frames: int, at_least: bool = False) -> InvalidVideoError:
    """The error of a stimulus with ``n_frames`` (at 30 Hz) > ``max_frames``."""
    return InvalidVideoError(
        f"{name}: {'at least ' if at_least else ''}{n_frames} frames at {FRAME_RATE_HZ:g} Hz "
        f"({n_frames / FRAME_RATE_HZ:.1f} s), more than max_frames={max_frames}; cut it into shorter stimuli or "
        f"raise --max-frames")


def wrong_dimensions(name: str, shape: tuple[int, ...]) -> InvalidVideoError:
    return InvalidVideoError(f"{name}: array has shape {shape}; expected [T, {FRAME_HEIGHT}, {FRAME_WIDTH}] "
                             f"grey-scale frames")


def read_array(name: str, handle: BinaryIO, suffix: str, max_frames: int) -> np.ndarray:
    """The array of a .npy, or the one array (or ``video``) of a .npz, read without pickle.

    Args:
        name: file name for messages.
        handle: the whole file, seekable, positioned at its start.
        suffix: ".npy" or ".npz".
        max_frames: most frames (first dimension) accepted; checked from the header.

    Raises:
        InvalidVideoError: unreadable, truncated, pickled, not 3-D, or longer than ``max_frames``.
    """
    try:
        if suffix == ".npy":
            return _read_npy(name, handle, max_frames, available=None)
        return _read_npz(name, handle, max_frames)
    except InvalidVideoError:
        raise
    except Exception as exc:  # truncated, not numpy, bad CRC, pickled objects: whatever numpy/zipfile raise
        raise InvalidVideoError(f"{name}: not a readable {suffix} file ({type(exc).__name__}: {exc}); save uint8 "
                                f"frames with numpy.{'save' if suffix == '.npy' else 'savez'}") from None


def _read_npy(name: str, handle: BinaryIO, max_frames: int, available: int | None) -> np.ndarray:
    """Check the header at the handle's position, then read the array.

    ``available``: bytes of the whole .npy (header included); None: up to the end of ``handle`` (seekable).
    """
    start = handle.tell()
    version = np.lib.format.read_magic(handle)
    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = reader(handle)
    if dtype.hasobject:
        raise InvalidVideoError(f"{name}: holds Object arrays (pickled Python objects), which are never loaded; save "
                                f"uint8 frames with numpy.save")
    if len(shape) != 3:
        raise wrong_dimensions(name, shape)
    if shape[0] > max_frames:
        raise too_long(name, shape[0], max_frames)
    header_bytes = handle.tell() - start
    held = (available if available is not None else handle.seek(0, io.SEEK_END) - start) - header_bytes
    declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if declared > held:
        raise InvalidVideoError(f"{name}: the header declares {declared} bytes of {dtype} data of shape {shape}, "
                                f"but the file holds {held}; it is truncated: write it again")
    handle.seek(start)
    return np.lib.format.read_array(handle, allow_pickle=False)


def _read_npz(name: str, handle: BinaryIO, max_frames: int) -> np.ndarray:
    """The member's declared unpacked size (at most ``max_frames`` frames of 144x256 pixels of 8 bytes) and its
    .npy header are checked before it is inflated (a small archive may unpack to gigabytes)."""
    max_bytes = max_frames * FRAME_HEIGHT * FRAME_WIDTH * MAX_ITEM_BYTES
    with zipfile.ZipFile(handle) as archive:
        members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
        keys = list(members)
        if len(keys) != 1 and NPZ_VIDEO_KEY not in members:
            raise InvalidVideoError(f"{name}: .npz holds arrays {keys}; store one array, or name the video "
                                    f"{NPZ_VIDEO_KEY!r}")
        info = members[keys[0] if len(keys) == 1 else NPZ_VIDEO_KEY]
        if not info.filename.endswith(".npy"):
            raise InvalidVideoError(f"{name}: member {info.filename!r} is not a .npy array; write the file with "
                                    f"numpy.savez")
        if info.file_size > max_bytes:
            raise InvalidVideoError(f"{name}: member {info.filename!r} unpacks to {info.file_size} bytes, more "
                                    f"than {max_bytes} (max_frames frames of {FRAME_HEIGHT}x{FRAME_WIDTH} "
                                    f"pixels of up to {MAX_ITEM_BYTES} bytes); cut it into shorter stimuli or "
                                    f"raise --max-frames")
        with archive.open(info) as member:  # inflated as it is read: the header check reads its first block
            return _read_npy(name, member, max_frames, available=info.file_size)
