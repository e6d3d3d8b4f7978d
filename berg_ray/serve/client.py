"""A small HTTP client of the service (standard library only; no Ray import).

    >>> client = BergClient("http://127.0.0.1:8000", token=os.environ.get("BERG_RAY_TOKEN"))
    >>> responses = client.encode("session-8_scan-5", video, selection={"roi": ["V1"]})  # float32 (T, U')
    >>> chosen = client.encode("session-8_scan-5", video, selection={"unit_index": mask})  # mask: 0/1, length U
    >>> running = client.encode("session-8_scan-5", video, modulations=traces)  # traces: float (T, 2), standardised

Service errors are raised as the package's exceptions (InvalidStimulusError, ScanNotAvailableError, ...), whose
message is the service's JSON ``error``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

import numpy as np

from berg_ray.errors import BergRayError, InvalidSelectionError
from berg_ray.serve.protocol import NPY_MEDIA_TYPE, NPZ_MEDIA_TYPE, decode_npy, encode_npy, encode_npz, error_class


class BergClient:
    """Client of one service URL (``http://host:port``), with an optional bearer token."""

    def __init__(self, url: str, token: str | None = None, timeout_s: float = 600.0) -> None:
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout_s = timeout_s

    def encode(self, train_session: str, stimulus: np.ndarray, selection: Mapping[str, Any] | None = None,
               perspectives: np.ndarray | None = None, modulations: np.ndarray | None = None) -> np.ndarray:
        """Responses float32 (T, U') or (B, T, U') to a uint8 (T, 144, 256) or (B, T, 144, 256) stimulus.

        Args:
            train_session: "session-8_scan-5" or "session8_scan5".
            stimulus: the video(s), uint8 (or integer-valued) at 30 Hz.
            selection: None or a dict of ``roi`` (str or list), ``field`` (int or list) and ``unit_index`` (a 0/1
                or bool vector of length U, readout order); the units of all keys are joined (union, as in BERG).
                ``roi`` / ``field`` travel as query parameters.
            perspectives: None, or pupil centre (x, y) per frame in standardised units: float [T, 2] for a single
                video, [B, T, 2] for a batch (0 is the model's default; validated by the service).
            modulations: None, or (pupil radius, treadmill speed) per frame, standardised, shaped as perspectives.

        With ``unit_index`` or a behaviour input the body is an ``.npz`` holding ``stimulus`` and those members
        (``application/x-npz``), else the stimulus ``.npy``.
        """
        selection = dict(selection or {})
        unit_index = selection.pop("unit_index", None)
        query = [("train_session", train_session)] + _selection_query(selection)
        extra = {"unit_index": unit_index, "perspectives": perspectives, "modulations": modulations}
        if all(value is None for value in extra.values()):
            body, media_type = encode_npy(np.asarray(stimulus)), NPY_MEDIA_TYPE
        else:
            body, media_type = encode_npz(np.asarray(stimulus), **extra), NPZ_MEDIA_TYPE
        raw = self._request("POST", f"/v1/encode?{urllib.parse.urlencode(query)}", body, media_type)
        return decode_npy(raw)

    def sessions(self) -> list[dict[str, Any]]:
        """Loaded scans: train_session, n_units, fields, units_per_roi."""
        return json.loads(self._request("GET", "/v1/sessions"))["sessions"]

    def metadata(self, train_session: str) -> dict[str, Any]:
        """The scan's metadata (per-unit lists in readout order)."""
        return json.loads(self._request("GET", f"/v1/metadata/{urllib.parse.quote(train_session)}"))

    def health(self) -> dict[str, Any]:
        """``GET /healthz``: {"status": "ok", "sessions": [...]} once every loaded scan is ready."""
        return json.loads(self._request("GET", "/healthz"))

    def stats(self) -> dict[str, Any]:
        """The core's batching statistics."""
        return json.loads(self._request("GET", "/v1/stats"))

    def _request(self, method: str, path: str, body: bytes | None = None, media_type: str = NPY_MEDIA_TYPE
                 ) -> bytes:
        headers = dict(self._headers, **({"Content-Type": media_type} if body is not None else {}))
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            raise _error_of(exc.code, exc.read()) from None


def _selection_query(selection: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    if not selection:
        return []
    unknown = set(selection) - {"roi", "field"}
    if unknown:
        raise InvalidSelectionError(f"unknown selection key(s) {sorted(unknown)}; allowed keys: roi, field, "
                                    "unit_index")
    query = []
    for key in ("roi", "field"):
        values = selection.get(key)
        values = [] if values is None else [values] if isinstance(values, (str, int)) else list(values)
        query += [(key, str(v)) for v in values]
    return query


def _error_of(status: int, body: bytes) -> BergRayError:
    """The package exception for an error response (BergRayError with the status for unknown kinds)."""
    try:
        payload = json.loads(body)
        message, kind = payload["error"], payload.get("type", "")
    except (ValueError, KeyError, TypeError):
        message, kind = body[:200].decode(errors="replace"), ""
    error = error_class(kind)(f"HTTP {status}: {message}")
    error.status = status  # type: ignore[attr-defined]
    return error
