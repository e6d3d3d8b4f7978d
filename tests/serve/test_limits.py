"""Service limits without a cluster: the body reader's deadline and rate, admission gates, the ingress sizing
rule, the .npy header check, and one-line CLI errors of ``berg-ray serve`` (issue 8)."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from berg_ray.config import INGRESS_LIGHT_SLOTS, IngressArgs, ScanId, ServeArgs
from berg_ray.errors import (BergRayError, InvalidSelectionError, InvalidSessionError, InvalidStimulusError,
                             MalformedSessionError)
from berg_ray.serve.admission import Gate
from berg_ray.serve.body import BodyLimits, read_body
from berg_ray.serve.protocol import (OverloadedError, RequestTimeoutError, RequestTooLargeError, decode_encode_body,
                                     decode_npy, status_of)

LIMITS = BodyLimits(max_bytes=1000, grace_s=0.3, min_bytes_per_s=1000.0, timeout_s=2.0)


def _receiver(messages, delays):
    """An ASGI receive callable yielding ``messages`` after ``delays`` seconds each, then waiting forever."""
    queue = list(zip(delays, messages))

    async def receive():
        if not queue:
            await asyncio.sleep(3600)
        delay, message = queue.pop(0)
        await asyncio.sleep(delay)
        return message

    return receive


def _body(chunk: bytes, more: bool = True) -> dict:
    return {"type": "http.request", "body": chunk, "more_body": more}


def test_body_reader_returns_a_complete_body():
    receive = _receiver([_body(b"ab"), _body(b"cd", more=False)], [0.0, 0.1])
    assert asyncio.run(read_body(receive, "4", LIMITS)) == b"abcd"
    assert asyncio.run(read_body(_receiver([_body(b"", more=False)], [0.0]), None, LIMITS)) == b""


def test_a_stalled_body_times_out_after_the_grace_period():
    started = time.monotonic()
    with pytest.raises(RequestTimeoutError, match="minimum rate"):
        asyncio.run(read_body(_receiver([_body(b"x" * 10)], [0.0]), "1000", LIMITS))
    assert LIMITS.grace_s <= time.monotonic() - started < LIMITS.grace_s + 0.01 + 1.0


def test_a_trickling_body_falls_behind_the_minimum_rate():
    """10 bytes every 0.1 s is 100 bytes/s, a tenth of the minimum: cut soon after the grace period."""
    started = time.monotonic()
    with pytest.raises(RequestTimeoutError, match="minimum rate"):
        asyncio.run(read_body(_receiver([_body(b"x" * 10)] * 99, [0.1] * 99), "990", LIMITS))
    assert time.monotonic() - started < LIMITS.grace_s + 1.0


def test_the_hard_deadline_applies_whatever_the_rate():
    limits = BodyLimits(max_bytes=10**9, grace_s=0.1, min_bytes_per_s=1.0, timeout_s=0.5)
    with pytest.raises(RequestTimeoutError, match="deadline"):
        asyncio.run(read_body(_receiver([_body(b"x" * 100)] * 99, [0.05] * 99), None, limits))


def test_deadline_grows_with_the_bytes_received():
    assert LIMITS.deadline_s(0) == LIMITS.grace_s
    assert LIMITS.deadline_s(500) == pytest.approx(LIMITS.grace_s + 0.5)
    assert LIMITS.deadline_s(10**9) == LIMITS.timeout_s


def test_body_reader_refuses_oversize_short_and_disconnected_bodies():
    with pytest.raises(RequestTooLargeError, match="1001"):
        asyncio.run(read_body(_receiver([], []), "1001", LIMITS))
    with pytest.raises(RequestTooLargeError):
        asyncio.run(read_body(_receiver([_body(b"x" * 600)] * 2, [0.0, 0.0]), None, LIMITS))
    with pytest.raises(BergRayError, match="Content-Length says 10"):
        asyncio.run(read_body(_receiver([_body(b"x" * 4, more=False)], [0.0]), "10", LIMITS))
    with pytest.raises(BergRayError, match="disconnected after sending 4 bytes"):
        asyncio.run(read_body(_receiver([_body(b"x" * 4), {"type": "http.disconnect"}], [0.0, 0.0]), "10", LIMITS))


def test_gate_refuses_beyond_its_limit_and_frees_places():
    gate = Gate("uploads", 2)
    with gate.admit(), gate.admit():
        with pytest.raises(OverloadedError, match="2 uploads"):
            with gate.admit():
                pass
    assert gate.active == 0
    with pytest.raises(RuntimeError), gate.admit():
        raise RuntimeError("a failing request still frees its place")
    assert gate.active == 0


def test_ingress_slots_must_exceed_the_admission_limits():
    defaults = ServeArgs(berg_dir="x").ingress
    assert defaults.max_ongoing_requests >= defaults.max_uploads + defaults.max_encodes + INGRESS_LIGHT_SLOTS
    assert defaults.max_queued_requests == -1
    with pytest.raises(ValueError, match="max_ongoing_requests is 40"):
        IngressArgs(max_ongoing_requests=40)
    with pytest.raises(ValueError, match="max_queued_requests"):
        IngressArgs(max_queued_requests=0)
    assert IngressArgs(max_uploads=4, max_encodes=4, max_ongoing_requests=8 + INGRESS_LIGHT_SLOTS).max_uploads == 4


def _npy(shape: tuple[int, ...], data: bytes) -> bytes:
    """A well-formed .npy header claiming uint8 ``shape``, followed by ``data``."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "|u1", "fortran_order": False, "shape": shape})
    return buffer.getvalue() + data


def test_npy_header_must_match_its_data():
    frames = bytes(2 * 144 * 256)
    assert decode_npy(_npy((2, 144, 256), frames)).shape == (2, 144, 256)
    with pytest.raises(InvalidStimulusError, match=r"shape \(1000000000, 144, 256\).*holds 73728 data bytes"):
        decode_npy(_npy((1000000000, 144, 256), frames))
    with pytest.raises(InvalidStimulusError, match="holds 73736 data bytes"):
        decode_npy(_npy((2, 144, 256), frames + b"trailing"))
    with pytest.raises(InvalidStimulusError, match="holds 73727 data bytes"):
        decode_npy(_npy((2, 144, 256), frames[:-1]))
    with pytest.raises(InvalidStimulusError, match="not a valid .npy"):
        decode_npy(b"\x93NUMPY\x01\x00\x10\x00{'descr': 'zz'}  ")


def _serve_cli(tmp_path, *args, timeout=120, env=None):
    """Run ``berg-ray serve`` with ``args`` in a subprocess; (exit code, stderr, seconds)."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "berg_ray.cli", "serve", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=tmp_path, env=env)
    return done.returncode, done.stderr, time.monotonic() - started


@pytest.mark.slow  # runs a whole Python process (scripts/test.sh --quick leaves it out)
@pytest.mark.parametrize(("config", "flags", "words"), [
    (None, ["--sessions", "bogus"], "train_session 'bogus' is malformed"),
    ("applications:\n  - args:\n      core:\n        max_batch: 4\n", [], "core.max_batch is not an option here"),
    ("applications:\n  - args: [unclosed\n", [], "not valid YAML at line"),
    ("- just\n- a list\n", [], "must hold a mapping"),
])
def test_serve_config_errors_are_one_line(tmp_path, fixture_berg_dir, config, flags, words):
    if config is not None:
        (tmp_path / "serve.yaml").write_text(config)
        flags = [*flags, "--config", str(tmp_path / "serve.yaml")]
    code, stderr, _ = _serve_cli(tmp_path, "--berg-dir", str(fixture_berg_dir), *flags)
    assert code == 2 and stderr.startswith("error: ") and words in stderr, stderr[-2000:]
    assert len(stderr.strip().splitlines()) == 1, stderr[-2000:]


@pytest.mark.slow  # runs a whole Python process (scripts/test.sh --quick leaves it out)
def test_serve_on_a_busy_port_fails_at_once(tmp_path, fixture_berg_dir):
    """Refused before Ray starts (no new Ray session), not after a 15 s Serve start-up; no wall-time bound, which a
    busy CI machine would make flaky."""
    ray_tmp = Path(tempfile.mkdtemp(prefix="br-"))  # this command's own Ray temp root (short: socket paths)
    try:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            code, stderr, _ = _serve_cli(tmp_path, "--berg-dir", str(fixture_berg_dir), "--port", str(port),
                                         env={**os.environ, "RAY_TMPDIR": str(ray_tmp)})
        assert code == 2 and f"127.0.0.1:{port}" in stderr and "--port" in stderr, stderr[-2000:]
        assert len(stderr.strip().splitlines()) == 1, stderr[-2000:]
        assert not list(ray_tmp.rglob("session_*")), "a Ray session was started before the port check"
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_statuses_of_the_new_errors():
    assert status_of(RequestTimeoutError("x")) == 408
    assert status_of(MalformedSessionError("x")) == 400 and status_of(InvalidSessionError("x")) == 404
    with pytest.raises(MalformedSessionError):
        ScanId.parse("session-8_scan-")


@pytest.mark.parametrize("content_length", ["\u0662", "2" * 5_000, "-2", "0x2", "2 2"])
def test_a_content_length_that_is_not_ascii_digits_is_refused(content_length):
    """'٢' was taken as 2; 5,000 digits raised int()'s ValueError (a 500)."""
    receive = _receiver([_body(b"ab", more=False)], [0.0])
    with pytest.raises(BergRayError, match="not a byte count in ASCII digits"):
        asyncio.run(read_body(receive, content_length, LIMITS))


@pytest.mark.parametrize("name", ["session-\u0668_scan-\u0665", "session\uff18_scan5", "session-8_scan-5\n\u0665",
                                  f"session-{'8' * 5_000}_scan-5", f"session-8_scan-{'0' * 5_000}5"])
def test_scan_numbers_are_ascii_digits_of_bounded_length(name):
    """'session-٨_scan-٥' parsed as session-8_scan-5; 5,000 digits raised int()'s ValueError (a 500)."""
    with pytest.raises(MalformedSessionError, match="ASCII digits") as caught:
        ScanId.parse(name)
    assert len(str(caught.value)) < 600  # the value is cut, not echoed whole
    assert ScanId.parse(" session08_scan-5 ") == ScanId(8, 5)


def test_field_query_values_are_ascii_digits_of_bounded_length():
    from berg_ray.serve.ingress import _selection_of

    assert _selection_of(["V1"], [" 2", "3"]) == {"roi": ["V1"], "field": [2, 3]}
    for bad in ("\u0662", "\uff12", "2" * 5_000, "-2", "2.0", ""):
        with pytest.raises(InvalidSelectionError, match="ASCII digits"):
            _selection_of([], ["1", bad])


def _npz(member: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("stimulus.npy", member)
    return buffer.getvalue()


def test_npy_headers_declaring_unallocatable_or_negative_shapes_are_400():
    """An .npz member declaring 32 PiB raised MemoryError (a 500); negative dimensions raised ValueError."""
    frames = bytes(2 * 144 * 256)
    with pytest.raises(InvalidStimulusError, match=r"member 'stimulus'.*shape \(1000000, 1000000, 144, 256\)") as c:
        decode_encode_body(_npz(_npy((10**6, 10**6, 144, 256), b"")), 10**8)
    assert status_of(c.value) == 400
    for body in (_npy((-2, -144, 256), frames), _npz(_npy((-2, -144, 256), frames))):
        with pytest.raises(InvalidStimulusError, match="negative shape"):
            decode_encode_body(body, 10**8)
    assert decode_encode_body(_npz(_npy((2, 144, 256), frames)), 10**8).stimulus.shape == (2, 144, 256)
