"""The ingress deployment: HTTP and Python-handle entry point (auth, decoding, validation, routing).

A request body is received, sized from its headers, decoded and validated while it holds an upload place; the
decoding runs in the replica's decode threads (berg_ray.serve.decoding), so the event loop keeps answering
``/healthz`` and receiving other bodies, and its bytes are held in the replica's decoded-bytes budget until the
answer.

Every request is validated here, once; the core and heads receive only clean uint8 videos of loaded scans, with
their behaviour inputs (if any) as float32 (B, T, 2) arrays of the same frames. Any failure becomes a JSON
``{"error": ..., "type": ...}`` response with its 4xx status (500 only for a bug), so a bad request never takes a
replica down. A core (or head) replica that dies while it holds a request makes that request
a 503 with Retry-After (ReplicaLostError); Serve routes later requests to the other replicas and replaces it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError, ReplicaUnavailableError
from ray.serve.handle import DeploymentHandle
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from berg_ray.checkpoint.release import read_scan_units
from berg_ray.config import ECHO_CHARS, ScanId, ServeArgs
from berg_ray.download import resolve_berg_dir
from berg_ray.storage.s3 import s3_options_for
from berg_ray.errors import BergRayError, InvalidSelectionError, ScanNotAvailableError
from berg_ray.cluster.metrics import RECORDER, record_request, route_of
from berg_ray.validation.numbers import ascii_int
from berg_ray.serve.admission import ByteBudget, Gate
from berg_ray.serve.body import BodyLimits, ClientClock, read_body
from berg_ray.serve.decoding import (DecodeLimits, DecodedRequest, build_decoder, decode_request, inflated_size,
                                     run_off_loop, validate_request)
from berg_ray.serve.protocol import (NPY_MEDIA_TYPE, NotFoundError, OverloadedError, ReplicaLostError,
                                     RequestTooLargeError, check_token, encode_npy, error_body, status_of)
from berg_ray.units import ScanUnits, select_units

logger = logging.getLogger("ray.serve")
# A replica that held the request is gone: its actor died (RayActorError, also a RayTaskError of a core whose head
# died) or the router's chosen replica vanished before taking it (ReplicaUnavailableError).
REPLICA_LOST_ERRORS = (RayActorError, ReplicaUnavailableError)


class Ingress:
    """Routes ``/healthz``, ``/v1/sessions``, ``/v1/metadata/{train_session}`` and ``/v1/encode``."""

    def __init__(self, args: ServeArgs, scan_ids: list[str], token_digest: str | None,
                 core: DeploymentHandle) -> None:
        self._args, self._token_digest, self._core = args, token_digest, core
        # s3://bucket/prefix: this node's verified cached copy
        berg_dir = resolve_berg_dir(args.berg_dir, s3_options_for(args.berg_dir, args.s3_endpoint_url))
        self._units: dict[str, ScanUnits] = {sid: read_scan_units(berg_dir, sid) for sid in scan_ids}
        self._body_limits = BodyLimits(args.max_body_bytes, args.body_grace_s, args.body_min_bytes_per_s,
                                       args.body_timeout_s)
        self._uploads = Gate("uploads", args.ingress.max_uploads,
                             lambda active: RECORDER.set("berg_ray_ingress_uploads", active))
        self._encodes = Gate("encodes", args.ingress.max_encodes,
                             lambda active: RECORDER.set("berg_ray_ingress_encodes", active))
        self._decoded = ByteBudget("decoded", args.ingress.max_decoded_bytes)
        self._decode_limits = DecodeLimits(args.max_body_bytes, args.max_inflate_ratio)
        self._decoder = build_decoder(args.ingress.decode_threads)
        self._client_clock = ClientClock()
        self._ready_sessions: list[str] | None = None

    async def __call__(self, request: Request) -> Response:
        """Answer one HTTP request and record it (berg_ray.cluster.metrics: count by route and status, latency)."""
        start = time.perf_counter()
        path = _path_of(request)
        response = await self._answer(request, path)
        record_request(route_of(request.method, path), response.status_code, time.perf_counter() - start)
        return response

    async def _answer(self, request: Request, path: str) -> Response:
        try:
            return await self._route(request, path)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a JSON error; the replica survives
            if status_of(exc) == 500:
                logger.exception("internal error on %s %s", request.method, request.url.path)
            headers = {"Retry-After": str(self._args.retry_after_s)} if status_of(exc) == 503 else None
            return JSONResponse(error_body(exc), status_code=status_of(exc), headers=headers)

    async def encode(self, train_session: str, stimulus: Any, selection: Mapping[str, Any] | None = None,
                     perspectives: Any = None, modulations: Any = None) -> np.ndarray:
        """Handle API, same semantics as ``BERG.encode``: float32 (T, U') or (B, T, U') responses.

        Args:
            train_session: "session-8_scan-5" or "session8_scan5" (a loaded scan).
            stimulus: uint8 (or integer-valued) [T, 144, 256] or [B, T, 144, 256].
            selection: None (all units) or a dict of ``roi`` / ``field`` / ``unit_index`` (union).
            perspectives: None, or pupil centre (x, y) per frame in standardised units: [T, 2] for a single video,
                [B, T, 2] for a batch.
            modulations: None, or (pupil radius, treadmill speed) per frame, standardised, shaped as perspectives.
        """
        scan_id = self._loaded(train_session)
        videos, batched, behaviour = await run_off_loop(
            self._decoder, validate_request, stimulus, {"perspectives": perspectives, "modulations": modulations})
        return await self._encode_valid(scan_id, videos, batched, selection, behaviour)

    async def _encode_valid(self, scan_id: str, videos: np.ndarray, batched: bool,
                            selection: Mapping[str, Any] | None, behaviour: Mapping[str, np.ndarray | None]
                            ) -> np.ndarray:
        """``behaviour``: validated inputs, float32 (B, T, 2) or None each (``validate_request``)."""
        check_frames(videos.shape, self._args.max_frames_per_request)
        units = select_units(self._units[scan_id], selection)
        with self._encodes.admit():
            responses = await self._call_core("encode", videos, scan_id, units, behaviour.get("perspectives"),
                                              behaviour.get("modulations"))
        return responses if batched else responses[0]

    async def healthz(self) -> dict[str, Any]:
        """{"status": "ok", "sessions": [...]} once the core and every loaded scan's readout head have answered.

        The core is asked until it has answered once; after that the ingress answers alone, so health stays
        fast whatever the load on the core (Serve restarts a replica whose own health check fails)."""
        if self._ready_sessions is None:
            self._ready_sessions = await self._call_core("ready")
        return {"status": "ok", "sessions": self._ready_sessions}

    async def stats(self) -> dict[str, Any]:
        """Batching statistics of the core replica that answers (one of them when there are several)."""
        return await self._call_core("stats")

    async def _call_core(self, method: str, *args: Any) -> Any:
        """``CoreServer.<method>(*args)`` through the handle (any replica); a full queue or a replica lost while it
        worked on the call become 503 errors (OverloadedError, ReplicaLostError) that name the retry."""
        try:
            return await getattr(self._core, method).remote(*args)
        except BackPressureError:
            raise OverloadedError("the service is at capacity (core queue full); retry later") from None
        except REPLICA_LOST_ERRORS as exc:
            logger.warning("a replica stopped during CoreServer.%s: %s", method, type(exc).__name__)
            raise ReplicaLostError(f"a replica working on this request stopped ({type(exc).__name__}); the service "
                                   "replaces it: retry after Retry-After seconds") from None

    def sessions(self) -> list[dict[str, Any]]:
        """Loaded scans with their unit counts, fields and units per area."""
        return [{"train_session": sid, "n_units": u.n_units, "fields": list(u.fields),
                 "units_per_roi": {roi: int(n) for roi, n in zip(*np.unique(u.area[u.area != ""],
                                                                            return_counts=True))}}
                for sid, u in self._units.items()]

    def metadata(self, train_session: str) -> dict[str, Any]:
        """The scan's metadata dict, JSON-ready (arrays as lists), per-unit arrays in readout order."""
        return _jsonable(self._units[self._loaded(train_session)].metadata)

    async def _route(self, request: Request, path: str) -> Response:
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
        scan_id = self._loaded(query["train_session"])  # refuse a bad scan before reading a body for it
        with contextlib.ExitStack() as held:
            decoded = await self._receive_and_decode(request, held)
            if decoded.unit_index is not None:
                selection = dict(selection or {}, unit_index=decoded.unit_index)
            responses = await self._encode_valid(scan_id, decoded.videos, decoded.batched, selection,
                                                 decoded.behaviour)
        return Response(encode_npy(responses), media_type=NPY_MEDIA_TYPE)

    async def _receive_and_decode(self, request: Request, held: contextlib.ExitStack) -> DecodedRequest:
        """Receive, size, decode and validate the body in one upload place; its decoded bytes join ``held``.

        The body's clock leaves out the loop's stalls; sizing (headers only) and decoding run in the decode threads;
        a body over the inflate ratio is refused before it is inflated, one over the budget before it is decoded."""
        self._client_clock.start()
        with self._uploads.admit():
            body = await read_body(request.receive, request.headers.get("content-length"), self._body_limits,
                                   self._client_clock)
            size = await run_off_loop(self._decoder, inflated_size, body, self._decode_limits)
            held.enter_context(self._decoded.reserve(size))
            return await run_off_loop(self._decoder, decode_request, body, self._decode_limits)

    def _loaded(self, train_session: str) -> str:
        scan_id = str(ScanId.parse(train_session))
        if scan_id not in self._units:
            raise ScanNotAvailableError(f"scan {scan_id} is not loaded by this service; loaded: {list(self._units)}")
        return scan_id


def check_frames(shape: tuple[int, ...], limit: int) -> None:
    """Refuse (413) a request of more than ``limit`` frames: videos x frames of a (B, T, 144, 256) shape."""
    frames = shape[0] * shape[1]
    if frames > limit:
        raise RequestTooLargeError(f"the request asks for {frames} frames ({shape[0]} video(s) x {shape[1]}), more "
                                   f"than this service's limit of {limit} frames per request (max_frames_per_request"
                                   f"); send fewer or shorter videos per request, or encode long videos with "
                                   f"berg-ray sweep (any length)")


def _path_of(request: Request) -> str:
    """The request's path below the app's route prefix, without a trailing slash ("/" for the root)."""
    return request.url.path[len(request.scope.get("root_path", "")):].rstrip("/") or "/"


def _selection_of(rois: list[str], fields: list[str]) -> dict[str, Any] | None:
    """BERG selection dict from repeated ``roi`` / ``field`` query parameters (None: all units)."""
    selection: dict[str, Any] = {}
    if rois:
        selection["roi"] = rois
    if fields:
        numbers = [ascii_int(f) for f in fields]
        if None in numbers:
            shown = [f if len(f) <= ECHO_CHARS else f"{f[:ECHO_CHARS]}..." for f in fields]
            raise InvalidSelectionError(f"field must be a field number in ASCII digits (e.g. field=2), got {shown}")
        selection["field"] = numbers
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
