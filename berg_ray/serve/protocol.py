"""The wire format of the service, shared by the ingress and the client.

Arrays travel as ``.npy`` bodies (``application/x-npy``, never pickled); control data and errors as JSON, errors
always ``{"error": message, "type": exception class}``. Every package error maps to one HTTP status here.

``POST /v1/encode`` takes either body (told apart by their magic bytes, so a wrong Content-Type does no harm):

- ``.npy``: the stimulus alone, uint8 [T, 144, 256] or [B, T, 144, 256];
- ``.npz`` (``application/x-npz``, ``np.savez`` or ``np.savez_compressed``): the member ``stimulus`` (required)
  and optionally ``unit_index``, a 1-D bool or integer 0/1 vector of length U (one entry per unit, readout
  order) whose units join the ``roi`` / ``field`` query selection (union, as in BERG). Any other member, a
  pickled or non-numeric member, or a member larger than the body limit once decompressed is refused (400).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import math
import zipfile
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from berg_ray.errors import (BergRayError, InvalidSelectionError, InvalidSessionError, InvalidStimulusError,
                             MalformedSessionError, ScanNotAvailableError)

NPY_MEDIA_TYPE = "application/x-npy"
NPZ_MEDIA_TYPE = "application/x-npz"
NPZ_STIMULUS, NPZ_UNIT_INDEX = "stimulus", "unit_index"  # members of an .npz encode body
_ZIP_MAGIC = b"PK\x03\x04"
JSON_MEDIA_TYPE = "application/json"


class RequestTooLargeError(BergRayError):
    """The request body is larger than the service accepts (HTTP 413)."""


class UnauthorizedError(BergRayError):
    """The bearer token is missing or wrong (HTTP 401)."""


class RequestTimeoutError(BergRayError):
    """The request body did not arrive within the service's deadline or minimum rate (HTTP 408)."""


class OverloadedError(BergRayError):
    """The service's bounded queue is full; retry after the Retry-After seconds (HTTP 503)."""


class ReplicaLostError(BergRayError):
    """A replica working on the request stopped (killed, crashed, node lost); Serve replaces it: retry (HTTP 503)."""


class NotFoundError(BergRayError):
    """No such route (HTTP 404)."""


# Most specific first: the first matching class decides the status.
STATUS_OF_ERROR: tuple[tuple[type[BaseException], int], ...] = (
    (UnauthorizedError, 401),
    (RequestTooLargeError, 413),
    (RequestTimeoutError, 408),
    (OverloadedError, 503),
    (ReplicaLostError, 503),
    (NotFoundError, 404),
    (ScanNotAvailableError, 404),
    (MalformedSessionError, 400),
    (InvalidSessionError, 404),
    (InvalidStimulusError, 400),
    (InvalidSelectionError, 400),
    (BergRayError, 400),
)


def error_class(name: str) -> type[BergRayError]:
    """The BergRayError subclass called ``name`` (BergRayError itself if there is none)."""
    pending, found = [BergRayError], {}
    while pending:
        cls = pending.pop()
        found[cls.__name__] = cls
        pending += cls.__subclasses__()
    return found.get(name, BergRayError)


def status_of(error: BaseException) -> int:
    """HTTP status of an exception: 4xx for package errors, 500 for anything else (a bug)."""
    for cls, status in STATUS_OF_ERROR:
        if isinstance(error, cls):
            return status
    return 500


def error_body(error: BaseException) -> dict[str, str]:
    """JSON body of an error response; internal errors do not leak their text."""
    if status_of(error) == 500:
        return {"error": f"internal error ({type(error).__name__}); see the server log", "type": "InternalError"}
    return {"error": str(error), "type": type(error).__name__}


def encode_npy(array: np.ndarray) -> bytes:
    """Serialise an array as ``.npy`` bytes (no pickle)."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def decode_npy(body: bytes) -> np.ndarray:
    """Parse ``.npy`` bytes; raise InvalidStimulusError for anything that is not a plain (non-object) array whose
    header matches the data that follows it (a header claiming more data than sent is never allocated)."""
    if not body:
        raise InvalidStimulusError("empty request body; send the video as an .npy file (application/x-npy)")
    stream = io.BytesIO(body)
    _check_npy_header(stream, len(body), "request body")
    return np.load(io.BytesIO(body), allow_pickle=False)


def _check_npy_header(stream: BinaryIO, size: int, what: str) -> None:
    """Read the ``.npy`` header at the start of ``stream`` (``size`` bytes in all) and raise InvalidStimulusError
    unless it declares a plain (non-object) array of a valid shape whose data is exactly the rest of the stream.

    Checked before any data is read, so a header declaring more than is sent (a shape too large to allocate)
    is refused without allocating it."""
    try:
        readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        version = np.lib.format.read_magic(stream)
        if version not in readers:
            raise ValueError(f"unsupported .npy format version {version}")
        shape, _, dtype = readers[version](stream)
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise InvalidStimulusError(f"{what} is not a valid .npy array ({exc}); send np.save output of a "
                                   "uint8 [T,144,256] or [B,T,144,256] array") from None
    if dtype.hasobject:
        raise InvalidStimulusError(f"{what}: .npy dtype {dtype} holds Python objects; send a uint8 array")
    if any(n < 0 for n in shape):
        raise InvalidStimulusError(f"{what}: .npy header declares the negative shape {shape}; send np.save output")
    declared, present = math.prod(shape) * dtype.itemsize, size - stream.tell()
    if declared != present:
        raise InvalidStimulusError(f"{what}: .npy header declares shape {shape} of {dtype} ({declared} data bytes) "
                                   f"but holds {present} data bytes; send the complete np.save output")


@dataclass(frozen=True)
class EncodeBody:
    """A decoded ``POST /v1/encode`` body: the stimulus and, from an ``.npz`` body, an optional unit_index."""

    stimulus: np.ndarray
    unit_index: np.ndarray | None = None


def encode_npz(stimulus: np.ndarray, unit_index: np.ndarray | None = None) -> bytes:
    """Serialise an encode body as ``.npz`` bytes (members ``stimulus`` and, if given, ``unit_index``)."""
    buffer = io.BytesIO()
    members = {NPZ_STIMULUS: np.asarray(stimulus)}
    if unit_index is not None:
        members[NPZ_UNIT_INDEX] = np.asarray(unit_index)
    np.savez(buffer, **members)
    return buffer.getvalue()


def decode_encode_body(body: bytes, max_member_bytes: int) -> EncodeBody:
    """Parse a ``POST /v1/encode`` body: ``.npy`` (stimulus) or ``.npz`` (stimulus [+ unit_index]).

    Args:
        body: the raw request body.
        max_member_bytes: largest decompressed size of one ``.npz`` member (the service's body limit).
    Raises:
        InvalidStimulusError: not ``.npy``/``.npz``, a missing/unknown/pickled member, or an oversized member.
        InvalidSelectionError: ``unit_index`` is not a 1-D bool or integer vector.
        RequestTooLargeError: an ``.npz`` member decompresses to more than ``max_member_bytes``.
    """
    if not body.startswith(_ZIP_MAGIC):
        return EncodeBody(decode_npy(body))
    members = _read_npz(body, max_member_bytes)
    if NPZ_STIMULUS not in members:
        raise InvalidStimulusError(f"the .npz body has no member {NPZ_STIMULUS!r} (members: {sorted(members)}); "
                                   f"use np.savez(f, {NPZ_STIMULUS}=video[, {NPZ_UNIT_INDEX}=mask])")
    unit_index = members.get(NPZ_UNIT_INDEX)
    if unit_index is not None and (unit_index.ndim != 1 or unit_index.dtype.kind not in "biu"):
        raise InvalidSelectionError(f"the .npz member {NPZ_UNIT_INDEX!r} must be a 1-D bool or integer 0/1 vector "
                                    f"(one entry per unit), got {unit_index.dtype} of shape {unit_index.shape}")
    return EncodeBody(members[NPZ_STIMULUS], unit_index)


def _read_npz(body: bytes, max_member_bytes: int) -> dict[str, np.ndarray]:
    """The members of an ``.npz`` body, each checked before it is decompressed: known name, size, no pickle."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(body))
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InvalidStimulusError(f"request body is not a valid .npz archive ({exc}); send np.savez output") from None
    names = [info.filename.removesuffix(".npy") for info in infos]
    unknown = sorted(set(names) - {NPZ_STIMULUS, NPZ_UNIT_INDEX})
    if unknown or len(set(names)) != len(names):
        raise InvalidStimulusError(f"the .npz body has unknown or repeated members {unknown or names}; allowed: "
                                   f"{NPZ_STIMULUS!r} (required) and {NPZ_UNIT_INDEX!r}")
    members = {}
    for name, info in zip(names, infos):
        if info.file_size > max_member_bytes:
            raise RequestTooLargeError(f"the .npz member {name!r} decompresses to {info.file_size} bytes, over the "
                                       f"limit of {max_member_bytes} bytes; send fewer or shorter videos")
        try:
            with archive.open(info) as file:
                _check_npy_header(file, info.file_size, f"the .npz member {name!r}")
                file.seek(0)
                members[name] = np.lib.format.read_array(file, allow_pickle=False)
        except InvalidStimulusError:
            raise
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise InvalidStimulusError(f"the .npz member {name!r} is not a valid plain .npy array ({exc})") from None
    return members


def token_digest(token: str) -> str:
    """SHA-256 hex digest of a bearer token (the service keeps only this)."""
    return hashlib.sha256(token.encode()).hexdigest()


def check_token(authorization: str | None, digest: str | None) -> None:
    """Raise UnauthorizedError unless ``authorization`` is ``Bearer <token>`` matching ``digest`` (None: no auth)."""
    if digest is None:
        return
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise UnauthorizedError("missing bearer token; send the header 'Authorization: Bearer <token>'")
    if not hmac.compare_digest(token_digest(token.strip()), digest):
        raise UnauthorizedError("wrong bearer token")
