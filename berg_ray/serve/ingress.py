"""The ingress deployment: HTTP and Python-handle entry point (auth, decoding, validation, routing).

Every request is validated here, once; the core and heads receive only clean uint8 videos of loaded scans. Any
failure becomes a JSON ``{"error": ..., "type": ...}`` response with its 4xx status (500 only for a bug), so a bad
request never takes a replica down.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
from ray.serve.exceptions import BackPressureError
from ray.serve.handle import DeploymentHandle
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from berg_ray.checkpoint.release import read_scan_units
from berg_ray.config import ScanId, ServeArgs
from berg_ray.download import resolve_berg_dir
from berg_ray.errors import BergRayError, InvalidSelectionError, ScanNotAvailableError
from berg_ray.serve.protocol import (NPY_MEDIA_TYPE, NotFoundError, OverloadedError, RequestTooLargeError,
                                     check_token, decode_encode_body, encode_npy, error_body, status_of)
from berg_ray.stimulus import validate_stimulus
from berg_ray.units import ScanUnits, select_units

logger = logging.getLogger("ray.serve")


class Ingress:
    """Routes ``/healthz``, ``/v1/sessions``, ``/v1/metadata/{train_session}`` and ``/v1/encode``."""

    def __init__(self, args: ServeArgs, scan_ids: list[str], token_digest: str | None,
                 core: DeploymentHandle) -> None:
        self._args, self._token_digest, self._core = args, token_digest, core
        berg_dir = resolve_berg_dir(args.berg_dir)  # s3://bucket/prefix: this node's verified cached copy
        self._units: dict[str, ScanUnits] = {sid: read_scan_units(berg_dir, sid) for sid in scan_ids}

    async def __call__(self, request: Request) -> Response:
        try:
            return await self._route(request)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a JSON error; the replica survives
            if status_of(exc) == 500:
                logger.exception("internal error on %s %s", request.method, request.url.path)
            headers = {"Retry-After": str(self._args.retry_after_s)} if status_of(exc) == 503 else None
            return JSONResponse(error_body(exc), status_code=status_of(exc), headers=headers)

    async def encode(self, train_session: str, stimulus: Any, selection: Mapping[str, Any] | None = None
                     ) -> np.ndarray:
        """Handle API, same semantics as ``BERG.encode``: float32 (T, U') or (B, T, U') responses.

        Args:
            train_session: "session-8_scan-5" or "session8_scan5" (a loaded scan).
            stimulus: uint8 (or integer-valued) [T, 144, 256] or [B, T, 144, 256].
            selection: None (all units) or a dict of ``roi`` / ``field`` / ``unit_index`` (union).
        """
        scan_id = self._loaded(train_session)
        videos, batched = validate_stimulus(stimulus)
        units = select_units(self._units[scan_id], selection)
        try:
            responses = await self._core.encode.remote(videos, scan_id, units)
        except BackPressureError:
            raise OverloadedError("the service is at capacity (core queue full); retry later") from None
        return responses if batched else responses[0]

    async def healthz(self) -> dict[str, Any]:
        """{"status": "ok", "sessions": [...]} once the core and every loaded scan's readout head answer."""
        return {"status": "ok", "sessions": await self._core.ready.remote()}

    async def stats(self) -> dict[str, Any]:
        """The core's batching statistics (see ``CoreServer.stats``)."""
        return await self._core.stats.remote()

    def sessions(self) -> list[dict[str, Any]]:
        """Loaded scans with their unit counts, fields and units per area."""
        return [{"train_session": sid, "n_units": u.n_units, "fields": list(u.fields),
                 "units_per_roi": {roi: int(n) for roi, n in zip(*np.unique(u.area[u.area != ""],
                                                                            return_counts=True))}}
                for sid, u in self._units.items()]

    def metadata(self, train_session: str) -> dict[str, Any]:
        """The scan's metadata dict, JSON-ready (arrays as lists), per-unit arrays in readout order."""
        return _jsonable(self._units[self._loaded(train_session)].metadata)

    async def _route(self, request: Request) -> Response:
        path = request.url.path[len(request.scope.get("root_path", "")):].rstrip("/") or "/"
        if (request.method, path) == ("GET", "/healthz"):
            return JSONResponse(await self.healthz())
        check_token(request.headers.get("authorization"), self._token_digest)
        if (request.method, path) == ("GET", "/v1/sessions"):
            return JSONResponse({"sessions": self.sessions()})
        if (request.method, path) == ("GET", "/v1/stats"):
            return JSONResponse(await self.stats())
        if request.method == "GET" and path.startswith("/v1/metadata/"):
            return JSONResponse(self.metadata(path.removeprefix("/v1/metadata/")))
        if (request.method, path) == ("POST", "/v1/encode"):
            return await self._encode_http(request)
        raise NotFoundError(f"no route {request.method} {path}; see GET /healthz, GET /v1/sessions, "
                            "GET /v1/metadata/{train_session}, POST /v1/encode")

    async def _encode_http(self, request: Request) -> Response:
        query = request.query_params
        if "train_session" not in query:
            raise BergRayError("missing query parameter train_session (e.g. ?train_session=session-8_scan-5)")
        selection = _selection_of(query.getlist("roi"), query.getlist("field"))
        body = decode_encode_body(await _read_body(request, self._args.max_body_bytes), self._args.max_body_bytes)
        if body.unit_index is not None:
            selection = dict(selection or {}, unit_index=body.unit_index)
        responses = await self.encode(query["train_session"], body.stimulus, selection)
        return Response(encode_npy(responses), media_type=NPY_MEDIA_TYPE)

    def _loaded(self, train_session: str) -> str:
        scan_id = str(ScanId.parse(train_session))
        if scan_id not in self._units:
            raise ScanNotAvailableError(f"scan {scan_id} is not loaded by this service; loaded: {list(self._units)}")
        return scan_id


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with RequestTooLargeError as soon as it exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestTooLargeError(f"request body of {int(declared)} bytes exceeds the limit of {limit} bytes; "
                                   "send fewer or shorter videos per request")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestTooLargeError(f"request body exceeds the limit of {limit} bytes; send fewer or shorter "
                                       "videos per request")
        chunks.append(chunk)
    return b"".join(chunks)


def _selection_of(rois: list[str], fields: list[str]) -> dict[str, Any] | None:
    """BERG selection dict from repeated ``roi`` / ``field`` query parameters (None: all units)."""
    selection: dict[str, Any] = {}
    if rois:
        selection["roi"] = rois
    if fields:
        if not all(f.strip().isdigit() for f in fields):
            raise InvalidSelectionError(f"field must be a field number (e.g. field=2), got {fields}")
        selection["field"] = [int(f) for f in fields]
    return selection or None


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
        if array.dtype.kind == "f":  # JSON has no NaN / inf
            return np.where(np.isfinite(array), array, None).tolist()
        return array.tolist()
    return value
