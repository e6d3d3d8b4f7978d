"""Decoding of ``POST /v1/encode`` bodies for the ingress: sized from their headers first, then decoded off the loop.

A compressed ``.npz`` body can inflate ~1,000x (an all-zero video), and inflating it takes the CPU for seconds. So
the ingress first reads only the ``.npy`` headers of the body (``inflated_size``: an ``.npz`` member is inflated
for its first bytes only), refuses a body that would inflate more than ``max_inflate_ratio`` times its size (413)
or whose headers disagree with the archive, reserves the decoded bytes, and only then decodes and validates it
(``decode_request``). Both run in the ingress's decode threads, never on its event loop (``run_off_loop``):
zlib and numpy release the GIL while they work, and the threads run at a lower CPU priority than the loop
(Linux), so on a busy host the loop still gets the CPU to answer ``/healthz`` and receive other bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import math
import os
import sys
import threading
import zipfile
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from berg_ray.behaviour import BEHAVIOUR_INPUTS, validate_behaviours
from berg_ray.config import DECODE_THREAD_NICENESS
from berg_ray.errors import InvalidStimulusError
from berg_ray.serve.protocol import (NPZ_ALLOWED, NPZ_MEMBERS, RequestTooLargeError, decode_encode_body,
                                     npz_member_header, npz_member_names)
from berg_ray.validation.videos import validate_stimulus

_ZIP_MAGIC = b"PK\x03\x04"
_T = TypeVar("_T")


@dataclass(frozen=True)
class DecodeLimits:
    """Limits of one decoded body.

    Attributes:
        max_member_bytes: largest decoded ``.npz`` member, bytes (the service's body limit; 413 beyond).
        max_inflate_ratio: most decoded bytes per body byte (413 beyond).
    """

    max_member_bytes: int
    max_inflate_ratio: float


@dataclass(frozen=True)
class DecodedRequest:
    """A decoded and validated encode body: uint8 videos (B, T, 144, 256), whether the stimulus was a batch (4-D),
    the optional ``unit_index`` member of an ``.npz`` body, and its behaviour inputs (``perspectives`` /
    ``modulations`` -> float32 (B, T, 2), or None where not sent)."""

    videos: np.ndarray
    batched: bool
    unit_index: np.ndarray | None
    behaviour: dict[str, np.ndarray | None] = field(default_factory=dict)


def inflated_size(body: bytes, limits: DecodeLimits) -> int:
    """Bytes the body decodes to, from its headers alone (no member is inflated beyond its ``.npy`` header), plus
    the float32 copies of its behaviour members that validation makes.

    An ``.npy`` body decodes to at most its own size (``decode_npy`` checks its header against its data).

    Raises:
        RequestTooLargeError: a member declares more than ``max_member_bytes``, or the body would inflate more than
            ``max_inflate_ratio`` times its size.
        InvalidStimulusError: not a readable archive, too many members, a pickled member, or a member whose
            ``.npy`` header declares a negative shape or disagrees with the member's size in the archive (checked
            first: a header that lies is malformed whatever size it claims).
    """
    if not body.startswith(_ZIP_MAGIC):
        return len(body)
    try:
        archive = zipfile.ZipFile(io.BytesIO(body))
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise InvalidStimulusError(f"request body is not a valid .npz archive ({exc}); send np.savez output") from None
    if len(infos) > len(NPZ_MEMBERS):
        names = sorted(info.filename.removesuffix(".npy") for info in infos[:5])
        raise InvalidStimulusError(f"the .npz body has {len(infos)} members ({', '.join(names)}...); allowed "
                                   f"members: {NPZ_ALLOWED}")
    names = npz_member_names(archive, infos)  # an unknown member is named (with its shape) before any inflating
    sizes = [_member_size(archive, info, limits.max_member_bytes) for info in infos]
    total = sum(data_bytes for data_bytes, _ in sizes)
    if total > limits.max_inflate_ratio * len(body):
        raise RequestTooLargeError(
            f"the .npz body inflates {total / len(body):.0f}x ({len(body)} bytes decode to {total}), over the limit "
            f"of {limits.max_inflate_ratio:g}x (max_inflate_ratio); send the video less compressed (np.savez, or an "
            ".npy body)")
    # a behaviour member's float32 copy (validate_behaviour) is counted as held too: an upper bound
    return total + sum(4 * elements for name, (_, elements) in zip(names, sizes) if name in BEHAVIOUR_INPUTS)


def _member_size(archive: zipfile.ZipFile, info: zipfile.ZipInfo, max_member_bytes: int) -> tuple[int, int]:
    """(decoded bytes, elements) of one ``.npz`` member, from its ``.npy`` header, checked against the archive's
    size record."""
    name = info.filename.removesuffix(".npy")
    shape, dtype, header_bytes = npz_member_header(archive, info)
    if dtype.hasobject:
        raise InvalidStimulusError(f"the .npz member {name!r} is not a valid plain .npy array (dtype {dtype} holds "
                                   "Python objects); send a uint8 array")
    if any(n < 0 for n in shape):
        raise InvalidStimulusError(f"the .npz member {name!r}: .npy header declares the negative shape {shape}; send "
                                   "np.savez output")
    data_bytes = math.prod(shape) * dtype.itemsize
    if header_bytes + data_bytes != info.file_size:  # a header that lies is malformed (400), whatever it claims
        raise InvalidStimulusError(f"the .npz member {name!r} declares shape {shape} of {dtype} ({data_bytes} data "
                                   f"bytes) but the archive records {info.file_size - header_bytes}; send the "
                                   "complete np.savez output")
    if data_bytes > max_member_bytes:
        raise RequestTooLargeError(f"the .npz member {name!r} decompresses to {data_bytes} bytes (shape {shape} of "
                                   f"{dtype}), over the limit of {max_member_bytes} bytes; send fewer or shorter "
                                   "videos")
    return data_bytes, math.prod(shape)


def decode_request(body: bytes, limits: DecodeLimits) -> DecodedRequest:
    """Decode an encode body (``.npy`` or ``.npz``) and validate its stimulus and behaviour (``validate_request``)."""
    decoded = decode_encode_body(body, limits.max_member_bytes)
    videos, batched, behaviour = validate_request(decoded.stimulus, {name: getattr(decoded, name)
                                                                     for name in BEHAVIOUR_INPUTS})
    return DecodedRequest(videos, batched, decoded.unit_index, behaviour)


def validate_request(stimulus: Any, behaviour: Mapping[str, Any]
                     ) -> tuple[np.ndarray, bool, dict[str, np.ndarray | None]]:
    """Validate a request's stimulus, then its behaviour inputs against it (HTTP body and handle alike).

    Args:
        stimulus: [T, 144, 256] or [B, T, 144, 256] (``validate_stimulus``).
        behaviour: ``perspectives`` / ``modulations`` -> None, or [T, 2] for a single video, [B, T, 2] for a batch.
    Returns:
        (videos uint8 (B, T, 144, 256), batched, {name: float32 (B, T, 2) or None}).
    Raises:
        InvalidStimulusError, InvalidBehaviourError: the message names the input, its shape and what is allowed.
    """
    videos, batched = validate_stimulus(stimulus)
    valid = validate_behaviours(behaviour, videos.shape[1], videos.shape[0] if batched else None)
    return videos, batched, {name: value if value is None or batched else value[None]
                             for name, value in valid.items()}


def build_decoder(threads: int) -> ThreadPoolExecutor:
    """The decode threads of an ingress replica (``ingress.decode_threads``), each at a lower CPU priority."""
    return ThreadPoolExecutor(threads, thread_name_prefix="berg-decode", initializer=_lower_priority)


def _lower_priority() -> None:
    """Raise this thread's niceness by DECODE_THREAD_NICENESS (Linux: per thread; elsewhere, or refused: no-op)."""
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError):
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread)
                                                     + DECODE_THREAD_NICENESS))


async def run_off_loop(executor: Executor, function: Callable[..., _T], *args: Any) -> _T:
    """``function(*args)`` in ``executor``, awaited without blocking the event loop.

    Cancelling the caller (a client that disconnects) still waits for the thread to end before it propagates, so
    the admission places the caller holds are freed only once the work they bound is over."""
    future = asyncio.get_running_loop().run_in_executor(executor, function, *args)
    cancelled = False
    while not future.done():
        try:
            await asyncio.wait({future})
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return future.result()
