"""The wire format of the service, shared by the ingress and the client.

Arrays travel as ``.npy`` bodies (``application/x-npy``, never pickled); control data and errors as JSON, errors
always ``{"error": message, "type": exception class}``. Every package error maps to one HTTP status here.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import math

import numpy as np

from berg_ray.errors import (BergRayError, InvalidSelectionError, InvalidSessionError, InvalidStimulusError,
                             MalformedSessionError, ScanNotAvailableError)

NPY_MEDIA_TYPE = "application/x-npy"
JSON_MEDIA_TYPE = "application/json"


class RequestTooLargeError(BergRayError):
    """The request body is larger than the service accepts (HTTP 413)."""


class UnauthorizedError(BergRayError):
    """The bearer token is missing or wrong (HTTP 401)."""


class RequestTimeoutError(BergRayError):
    """The request body did not arrive within the service's deadline or minimum rate (HTTP 408)."""


class OverloadedError(BergRayError):
    """The service's bounded queue is full; retry after the Retry-After seconds (HTTP 503)."""


class NotFoundError(BergRayError):
    """No such route (HTTP 404)."""


# Most specific first: the first matching class decides the status.
STATUS_OF_ERROR: tuple[tuple[type[BaseException], int], ...] = (
    (UnauthorizedError, 401),
    (RequestTooLargeError, 413),
    (RequestTimeoutError, 408),
    (OverloadedError, 503),
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
    try:
        readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        version = np.lib.format.read_magic(stream)
        if version not in readers:
            raise ValueError(f"unsupported .npy format version {version}")
        shape, _, dtype = readers[version](stream)
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise InvalidStimulusError(f"request body is not a valid .npy array ({exc}); send np.save output of a "
                                   "uint8 [T,144,256] or [B,T,144,256] array") from None
    if dtype.hasobject:
        raise InvalidStimulusError(f".npy dtype {dtype} holds Python objects; send a uint8 array")
    declared, present = math.prod(shape) * dtype.itemsize, len(body) - stream.tell()
    if declared != present:
        raise InvalidStimulusError(f".npy header declares shape {shape} of {dtype} ({declared} data bytes) but the "
                                   f"body holds {present} data bytes; send the complete np.save output")
    return np.load(io.BytesIO(body), allow_pickle=False)


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
