"""Hostile clients against the real Serve HTTP proxy on 127.0.0.1 with the default service limits.

Slow uploads, a bounded flood and malformed requests (issue 8, items 1, 2 and 4). Every socket a test opens is
closed by the test; every flood is bounded in count and in time.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import threading
import time
import urllib.error
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from berg_ray.config import SERVE_APP_NAME, ServeArgs
from berg_ray.serve.cli import free_port
from berg_ray.serve.protocol import encode_npy

pytestmark = pytest.mark.slow
ENCODE = "/v1/encode?train_session=session-8_scan-5"
DEFAULTS = ServeArgs(berg_dir="unused")
SLOW_CLIENTS = 16  # the ingress's max_ongoing_requests before issue 8 (all of its slots)
FLOOD = 110


@pytest.fixture(scope="module")
def url(ray_cluster, fixture_berg_dir):
    """The service with its default limits (only the core is pinned to the CPU with 2 torch threads)."""
    from ray import serve

    from berg_ray.serve.app import build_app

    serve.shutdown()  # another module's Serve instance would keep its own HTTP port
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app({"berg_dir": str(fixture_berg_dir), "core": {"num_gpus": 0, "torch_threads": 2}}),
              name=SERVE_APP_NAME, route_prefix="/")
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()


def _request(url, path, body=None, timeout=60.0, headers=None):
    """(status, body, lower-cased headers) of one request."""
    request = urllib.request.Request(url + path, data=body, method="POST" if body is not None else "GET",
                                     headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read(), {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), {k.lower(): v for k, v in exc.headers.items()}


def _open_slow_upload(url: str, declared: int, first: bytes) -> socket.socket:
    """A socket that sent the headers of POST /v1/encode claiming ``declared`` bytes, then only ``first``."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.sendall(f"POST {ENCODE} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-npy\r\n"
                 f"Content-Length: {declared}\r\n\r\n".encode() + first)
    return sock


def _read_response(sock: socket.socket, deadline: float) -> bytes:
    """Everything the server sends until it closes the connection or ``deadline`` (monotonic) passes."""
    data = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, min(1.0, deadline - time.monotonic())))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            if b"\r\n\r\n" in data and _complete(data):
                return data
            continue
        except OSError:
            return data
        if not chunk:
            return data
        data += chunk
    return data


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def test_slow_uploads_are_cut_off_and_never_starve_health_or_fast_clients(url, fixture_stimuli):
    """16 uploads that stall (or trickle) after a few bytes: /healthz and a fast encode still answer at once,
    and every slow upload gets a 408 JSON answer once it falls behind the minimum rate."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(_open_slow_upload(url, 1_000_000, b"\x93NUMPY")) for _ in range(SLOW_CLIENTS)]
        opened = time.monotonic()
        time.sleep(1.0)  # let every slow upload reach the ingress
        started = time.monotonic()
        assert _request(url, "/healthz", timeout=10)[0] == 200
        code, payload, _ = _request(url, ENCODE, encode_npy(fixture_stimuli[0, :2]), timeout=60)
        assert code == 200, payload
        assert time.monotonic() - started < 60
        trickle = socks[0]
        limit = DEFAULTS.body_grace_s + 2_000 / DEFAULTS.body_min_bytes_per_s + 20.0  # + slack for a loaded box
        for sock in socks:
            if sock is trickle:
                while time.monotonic() - opened < DEFAULTS.body_grace_s / 2:  # 1 byte/s: far below the rate
                    with contextlib.suppress(OSError):
                        trickle.sendall(b"x")
                    time.sleep(1.0)
            answer = _read_response(sock, opened + limit)
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408"), answer[:300]
            assert "minimum" in json.loads(body)["error"]
        assert time.monotonic() - opened >= DEFAULTS.body_grace_s - 1.0  # not before the grace period


def test_short_body_gets_an_answer(url):
    """A body shorter than its Content-Length (the sender then waits) gets a 408 JSON answer, not silence."""
    with _open_slow_upload(url, 1_000, b"\x93NUMPY" + bytes(494)) as sock:
        answer = _read_response(sock, time.monotonic() + DEFAULTS.body_grace_s + 20.0)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer[:300]
    assert "500 of 1000 bytes" in json.loads(body)["error"]


def test_bounded_flood_gets_only_json_503_with_retry_after(url, fixture_stimuli):
    """110 simultaneous requests: each is answered 200 or our JSON 503 with Retry-After, none by the proxy."""
    body = encode_npy(fixture_stimuli[0, :2])
    barrier = threading.Barrier(FLOOD)

    def fire(_):
        barrier.wait(timeout=60)
        return _request(url, ENCODE, body, timeout=300)

    with ThreadPoolExecutor(max_workers=FLOOD) as pool:
        results = list(pool.map(fire, range(FLOOD)))
    codes = sorted(code for code, _, _ in results)
    assert set(codes) <= {200, 503} and 200 in codes, codes
    for code, payload, headers in results:
        if code == 503:
            assert headers.get("content-type") == "application/json", payload[:200]
            assert headers.get("retry-after") == str(DEFAULTS.retry_after_s)
            assert "capacity" in json.loads(payload)["error"]
    assert _request(url, "/healthz", timeout=10)[0] == 200


def _npy_with_shape(shape: str) -> bytes:
    """A v1.0 .npy whose header claims ``shape`` but holds 2 frames of data."""
    header = f"{{'descr': '|u1', 'fortran_order': False, 'shape': {shape}, }}".encode()
    header += b" " * (-(10 + len(header) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + bytes(2 * 144 * 256)


def _npz_of(member: bytes) -> bytes:
    """A compressed .npz whose member ``stimulus`` holds ``member`` (an .npy file, header and data)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("stimulus.npy", member)
    return buffer.getvalue()


def _npy_header_only(shape: str) -> bytes:
    return _npy_with_shape(shape)[:-2 * 144 * 256]


MANY_DIGITS = "8" * 5_000  # Python's int() refuses more than 4,300 digits
ZEROS = encode_npy(np.zeros((2, 144, 256), np.uint8))
MALFORMED = [
    (ENCODE, _npy_with_shape("(1000000000, 144, 256)"), "shape"),
    (ENCODE, _npz_of(_npy_header_only("(1000000, 1000000, 144, 256)")), "shape"),  # MemoryError: was a 500
    (ENCODE, _npz_of(_npy_with_shape("(-2, -144, 256)")), "negative shape"),
    (ENCODE, _npy_with_shape("(-2, -144, 256)"), "negative shape"),
    (ENCODE + "&field=" + MANY_DIGITS, ZEROS, "field"),
    (ENCODE + "&field=%D9%A2", ZEROS, "ASCII"),  # Arabic-Indic 2
    (f"/v1/encode?train_session=session-{MANY_DIGITS}_scan-5", ZEROS, "malformed"),
    ("/v1/encode?train_session=session-%D9%A8_scan-%D9%A5", ZEROS, "ASCII"),  # session-٨_scan-٥ was session-8_scan-5
    (f"/v1/metadata/session-{MANY_DIGITS}_scan-5", None, "malformed"),
    ("/v1/metadata/session-%EF%BC%98_scan-5", None, "malformed"),  # a fullwidth 8
    (ENCODE, _npy_with_shape("(3, 144, 256)"), "bytes"),
    (ENCODE, _npy_with_shape("(2, 144, 256)") + b"trailing", "bytes"),
    (ENCODE + "&field=%C2%B2", encode_npy(np.zeros((2, 144, 256), np.uint8)), "field"),
    ("/v1/encode?train_session=session-8_scan-", encode_npy(np.zeros((2, 144, 256), np.uint8)), "malformed"),
    ("/v1/metadata/bogus", None, "malformed"),
]


@pytest.mark.parametrize(("path", "body", "words"), MALFORMED)
def test_malformed_requests_are_400_naming_the_problem(url, path, body, words):
    code, payload, _ = _request(url, path, body)
    assert code == 400, payload[:300]
    assert words in json.loads(payload)["error"]


def test_well_formed_scan_that_is_not_loaded_stays_404(url):
    for path in ("/v1/metadata/session-9_scan-6", "/v1/metadata/session-9_scan-99"):
        code, payload, _ = _request(url, path)
        assert code == 404 and "not" in json.loads(payload)["error"], payload
