"""The wire format of the service, shared by the ingress and the client.

Arrays travel as ``.npy`` bodies (``application/x-npy``, never pickled); control data and errors as JSON, errors
always ``{"error": message, "type": exception class}``. Every package error maps to one HTTP status here.

``POST /v1/encode`` takes either body (told apart by their magic bytes, so a wrong Content-Type does no harm):

- ``.npy``: the stimulus alone, uint8 [T, 144, 256] or [B, T, 144, 256];
- ``.npz`` (``application/x-npz``, ``np.savez`` or ``np.savez_compressed``): the member ``stimulus`` (required)
  and optionally ``unit_index``, a 1-D bool or integer 0/1 vector of length U (one entry per unit, readout
  order) whose units join the ``roi`` / ``field`` query selection (union, as in BERG), and the behaviour inputs
  ``perspectives`` and ``modulations`` (float [T, 2] for a [T, 144, 256] stimulus, [B, T, 2] for a batch;
  validated by the ingress with ``berg_ray.behaviour.validate_behaviour``). Any other member (named in the
  error with its shape), a pickled or non-numeric member, or a member larger than the body limit once
  decompressed is refused (400).
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

from berg_ray.behaviour import BEHAVIOUR_INPUTS
from berg_ray.errors import (BergRayError, InvalidSelectionError, InvalidSessionError, InvalidStimulusError,
                             MalformedSessionError, ScanNotAvailableError)

NPY_MEDIA_TYPE = "application/x-npy"
NPZ_MEDIA_TYPE = "application/x-npz"
NPZ_STIMULUS, NPZ_UNIT_INDEX = "stimulus", "unit_index"  # members of an .npz encode body
NPZ_MEMBERS = (NPZ_STIMULUS, NPZ_UNIT_INDEX, *BEHAVIOUR_INPUTS)
NPZ_ALLOWED = (f"{NPZ_STIMULUS!r} (required; uint8 [T,144,256] or [B,T,144,256]), {NPZ_UNIT_INDEX!r} (0/1 vector "
               f"of length U), {BEHAVIOUR_INPUTS[0]!r} and {BEHAVIOUR_INPUTS[1]!r} (float [T,2], or [B,T,2] for a "
               "batch)")
_NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
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
        shape, dtype = _read_npy_header(stream)
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


def _read_npy_header(stream: BinaryIO) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from the ``.npy`` header at the start of ``stream``; ValueError (and the like) if unreadable."""
    version = np.lib.format.read_magic(stream)
    if version not in _NPY_HEADER_READERS:
        raise ValueError(f"unsupported .npy format version {version}")
    shape, _, dtype = _NPY_HEADER_READERS[version](stream)
    return shape, dtype


def npz_member_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, header bytes) of one ``.npz`` member, from its ``.npy`` header alone (nothing else inflated).

    Raises:
        InvalidStimulusError: the member does not start with a readable ``.npy`` header.
    """
    try:
        with archive.open(info) as member:
            shape, dtype = _read_npy_header(member)
            return shape, dtype, member.tell()
    except (ValueError, OSError, EOFError, SyntaxError, zipfile.BadZipFile, RuntimeError) as exc:
        name = info.filename.removesuffix(".npy")
        raise InvalidStimulusError(f"the .npz member {name!r} is not a valid plain .npy array ({exc})") from None


def npz_member_names(archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo]) -> list[str]:
    """The member names of an ``.npz`` body, each known and present once.

    Raises:
        InvalidStimulusError: a repeated member, or an unknown one (named with the shape and dtype of its header,
            and the allowed members).
    """
    names = [info.filename.removesuffix(".npy") for info in infos]
    if len(set(names)) != len(names):
        raise InvalidStimulusError(f"the .npz body repeats members ({', '.join(sorted(names))}); send each member "
                                   "once (np.savez output)")
    unknown = [(name, info) for name, info in zip(names, infos) if name not in NPZ_MEMBERS]
    if unknown:
        described = "; ".join(f"{name!r} ({_header_summary(archive, info)})" for name, info in unknown[:4])
        raise InvalidStimulusError(f"the .npz body has {len(names)} members ({', '.join(sorted(names))}), unknown: "
                                   f"{described}; allowed members: {NPZ_ALLOWED}")
    return names


def _header_summary(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> str:
    try:
        shape, dtype, _ = npz_member_header(archive, info)
    except InvalidStimulusError:
        return "not a readable .npy array"
    return f"shape {list(shape)}, {dtype}"


@dataclass(frozen=True)
class EncodeBody:
    """A decoded ``POST /v1/encode`` body: the stimulus and, from an ``.npz`` body, an optional unit_index and the
    behaviour inputs as sent (checked against the stimulus by ``berg_ray.serve.decoding.validate_request``)."""

    stimulus: np.ndarray
    unit_index: np.ndarray | None = None
    perspectives: np.ndarray | None = None
    modulations: np.ndarray | None = None


def encode_npz(stimulus: np.ndarray, unit_index: np.ndarray | None = None, perspectives: np.ndarray | None = None,
               modulations: np.ndarray | None = None) -> bytes:
    """Serialise an encode body as ``.npz`` bytes: member ``stimulus`` and each of ``unit_index``,
    ``perspectives``, ``modulations`` that is given."""
    buffer = io.BytesIO()
    given = {NPZ_UNIT_INDEX: unit_index, BEHAVIOUR_INPUTS[0]: perspectives, BEHAVIOUR_INPUTS[1]: modulations}
    members = {NPZ_STIMULUS: np.asarray(stimulus)} | {k: np.asarray(v) for k, v in given.items() if v is not None}
    np.savez(buffer, **members)
    return buffer.getvalue()


def decode_encode_body(body: bytes, max_member_bytes: int) -> EncodeBody:
    """Parse a ``POST /v1/encode`` body: ``.npy`` (stimulus) or ``.npz`` (stimulus [+ unit_index, perspectives,
    modulations]); the behaviour members are returned as sent (their shapes depend on the stimulus's).

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
                                   f"use np.savez(f, {NPZ_STIMULUS}=video[, {NPZ_UNIT_INDEX}=mask, "
                                   f"{BEHAVIOUR_INPUTS[0]}=..., {BEHAVIOUR_INPUTS[1]}=...])")
    unit_index = members.get(NPZ_UNIT_INDEX)
    if unit_index is not None and (unit_index.ndim != 1 or unit_index.dtype.kind not in "biu"):
        raise InvalidSelectionError(f"the .npz member {NPZ_UNIT_INDEX!r} must be a 1-D bool or integer 0/1 vector "
                                    f"(one entry per unit), got {unit_index.dtype} of shape {unit_index.shape}")
    return EncodeBody(members[NPZ_STIMULUS], unit_index, *(members.get(name) for name in BEHAVIOUR_INPUTS))


def _read_npz(body: bytes, max_member_bytes: int) -> dict[str, np.ndarray]:
    """The members of an ``.npz`` body, each checked before it is decompressed: known name, size, no pickle."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(body))
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InvalidStimulusError(f"request body is not a valid .npz archive ({exc}); send np.savez output") from None
    names = npz_member_names(archive, infos)
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
