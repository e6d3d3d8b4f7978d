"""Decoding of encode bodies without a cluster (issue 16, finding 1): sizes from headers before inflating, the
inflate-ratio bound, the decoded-bytes budget, work off the event loop, and a body clock that leaves out the
server's own stalls."""

from __future__ import annotations

import asyncio
import io
import os
import sys
import threading
import time
import zipfile

import numpy as np
import pytest

from berg_ray.config import DECODE_THREAD_NICENESS, DEFAULT_MAX_INFLATE_RATIO, ServeArgs
from berg_ray.errors import InvalidBehaviourError, InvalidStimulusError
from berg_ray.serve.admission import ByteBudget
from berg_ray.serve.body import BodyLimits, ClientClock, read_body
from berg_ray.serve.decoding import DecodeLimits, build_decoder, decode_request, inflated_size, run_off_loop
from berg_ray.serve.protocol import (OverloadedError, RequestTimeoutError, RequestTooLargeError, encode_npy,
                                     encode_npz, status_of)

LIMITS = DecodeLimits(max_member_bytes=64 * 2**20, max_inflate_ratio=DEFAULT_MAX_INFLATE_RATIO)


def _compressed(**members: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **members)
    return buffer.getvalue()


def test_sizes_come_from_the_headers():
    video = np.random.default_rng(0).integers(0, 256, (3, 144, 256), dtype=np.uint8)
    assert inflated_size(encode_npy(video), LIMITS) == len(encode_npy(video))
    body = encode_npz(video, np.ones(7, bool))
    assert inflated_size(body, LIMITS) == video.nbytes + 7
    decoded = decode_request(body, LIMITS)
    assert decoded.videos.shape == (1, 3, 144, 256) and not decoded.batched and decoded.unit_index.sum() == 7
    assert inflated_size(_compressed(stimulus=video), LIMITS) == video.nbytes  # noise: ratio ~1


def test_a_zip_bomb_is_refused_before_it_is_inflated():
    """An all-zero video of 1,000 frames compresses ~1,000x: 413 naming the ratio and the limit."""
    bomb = _compressed(stimulus=np.zeros((1000, 144, 256), np.uint8))
    with pytest.raises(RequestTooLargeError, match=r"inflates \d+x .* over the limit of 64x \(max_inflate_ratio\)"):
        inflated_size(bomb, LIMITS)
    assert status_of(RequestTooLargeError("x")) == 413
    assert inflated_size(bomb, DecodeLimits(64 * 2**20, 10_000.0)) == 1000 * 144 * 256


def _npz_with_header(shape: tuple[int, ...], data: bytes) -> bytes:
    """An .npz whose member ``stimulus`` has a uint8 header claiming ``shape`` and then ``data``."""
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, {"descr": "|u1", "fortran_order": False, "shape": shape})
    member.write(data)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("stimulus.npy", member.getvalue())
    return buffer.getvalue()


def test_a_header_that_disagrees_with_the_archive_is_400_without_allocating():
    body = _npz_with_header((1_000_000, 144, 256), bytes(2 * 144 * 256))
    with pytest.raises(InvalidStimulusError, match=r"declares shape \(1000000, 144, 256\) of uint8 \(36864000000 "
                                                   r"data bytes\) but the archive records 73728"):
        inflated_size(body, LIMITS)  # 36.9 GB declared, 74 kB present: a lying header is malformed (400)
    honest = _npz_with_header((2, 144, 256), bytes(2 * 144 * 256))
    with pytest.raises(RequestTooLargeError, match=r"decompresses to 73728 bytes \(shape \(2, 144, 256\)"):
        inflated_size(honest, DecodeLimits(max_member_bytes=1000, max_inflate_ratio=DEFAULT_MAX_INFLATE_RATIO))
    body = _npz_with_header((3, 144, 256), bytes(2 * 144 * 256))
    with pytest.raises(InvalidStimulusError, match="110592 data bytes.* archive records 73728"):
        inflated_size(body, LIMITS)
    with pytest.raises(InvalidStimulusError, match="3 members .*other"):
        buffer = io.BytesIO()
        np.savez(buffer, stimulus=np.zeros(1), unit_index=np.zeros(1), other=np.zeros(1))
        inflated_size(buffer.getvalue(), LIMITS)
    with pytest.raises(InvalidStimulusError, match="not a valid .npz"):
        inflated_size(b"PK\x03\x04 truncated", LIMITS)


def test_behaviour_members_are_sized_validated_and_batched():
    """perspectives / modulations beside the stimulus: their float32 copies join the decoded size, they come out
    as (B, T, 2), and an unknown member is named with its shape before anything is inflated."""
    video = np.zeros((3, 144, 256), np.uint8)
    modulations = np.arange(6, dtype=np.float64).reshape(3, 2)
    body = encode_npz(video, modulations=modulations)
    assert inflated_size(body, LIMITS) == video.nbytes + modulations.nbytes + modulations.size * 4
    decoded = decode_request(body, LIMITS)
    assert decoded.behaviour["perspectives"] is None and decoded.behaviour["modulations"].dtype == np.float32
    np.testing.assert_array_equal(decoded.behaviour["modulations"], modulations[None])
    batch = decode_request(encode_npz(video[None].repeat(2, 0), perspectives=np.ones((2, 3, 2))), LIMITS)
    assert batch.batched and batch.behaviour["perspectives"].shape == (2, 3, 2)
    with pytest.raises(InvalidBehaviourError, match=r"perspectives .* shape \[3, 3\]; expected \[T, 2\] = \[3, 2\]"):
        decode_request(encode_npz(video, perspectives=np.ones((3, 3))), LIMITS)
    with pytest.raises(InvalidStimulusError, match=r"unknown: 'perspective' \(shape \[3, 2\], float64\); allowed "
                                                   r"members: 'stimulus' .*'perspectives' and 'modulations'"):
        inflated_size(_compressed(stimulus=video, perspective=np.ones((3, 2))), LIMITS)


def test_byte_budget_refuses_beyond_its_limit_and_frees_bytes():
    budget = ByteBudget("decoded", 100)
    with budget.reserve(60):
        with pytest.raises(OverloadedError, match="60 decoded bytes held, 50 more"):
            with budget.reserve(50):
                pass
        with budget.reserve(40):
            assert budget.held == 100
    with pytest.raises(RequestTooLargeError, match="decodes to 101 bytes"):
        with budget.reserve(101):
            pass
    assert budget.held == 0


def test_config_refuses_a_budget_below_one_body():
    defaults = ServeArgs(berg_dir="x")
    assert defaults.ingress.max_decoded_bytes >= defaults.max_body_bytes and defaults.max_inflate_ratio == 64
    with pytest.raises(ValueError, match="max_decoded_bytes is 1000 but must be at least max_body_bytes"):
        ServeArgs(berg_dir="x", ingress={"max_decoded_bytes": 1000})
    with pytest.raises(ValueError, match="max_inflate_ratio"):
        ServeArgs(berg_dir="x", max_inflate_ratio=0.5)


async def _max_loop_lag(seconds: float) -> float:
    """The longest delay of a 10 ms sleep on this loop over ``seconds``."""
    worst, end = 0.0, time.monotonic() + seconds
    while time.monotonic() < end:
        before = time.monotonic()
        await asyncio.sleep(0.01)
        worst = max(worst, time.monotonic() - before - 0.01)
    return worst


def test_work_off_the_loop_leaves_it_responsive_and_holds_until_done():
    from concurrent.futures import ThreadPoolExecutor

    finished = threading.Event()

    def work(seconds: float) -> str:
        time.sleep(seconds)  # stands for decoding (zlib and numpy release the GIL the same way)
        finished.set()
        return "done"

    async def scenario():
        with ThreadPoolExecutor(1) as pool:
            lag = asyncio.ensure_future(_max_loop_lag(0.5))
            assert await run_off_loop(pool, work, 0.6) == "done"
            assert await lag < 0.2
            finished.clear()
            task = asyncio.ensure_future(run_off_loop(pool, work, 0.5))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert finished.is_set()  # the caller's admission places were held until the work ended

    asyncio.run(scenario())


def _stalled_upload(clock_of):
    """A 3-message body whose client waits 0.5 s before its second message, while the server's loop is blocked
    for 2 s (another request's work) just after the first; the grace period is 0.3 s."""
    limits = BodyLimits(max_bytes=1000, grace_s=0.3, min_bytes_per_s=1000.0, timeout_s=5.0)
    messages = [({"type": "http.request", "body": b"x" * 10, "more_body": True}, 0.0),
                ({"type": "http.request", "body": b"y" * 10, "more_body": True}, 0.5),
                ({"type": "http.request", "body": b"z" * 10, "more_body": False}, 0.0)]

    async def receive():
        message, delay = messages.pop(0)
        await asyncio.sleep(delay)
        return message

    async def scenario():
        clock = clock_of()
        reading = asyncio.ensure_future(read_body(receive, "30", limits, clock))
        await asyncio.sleep(0.1)
        time.sleep(2.0)  # the loop stalls: nothing, the body's clock included, can run
        try:
            return await reading
        finally:
            if isinstance(clock, ClientClock):
                clock.stop()

    return asyncio.run(scenario())


def _started_client_clock() -> ClientClock:
    clock = ClientClock()
    clock.start()
    return clock


def test_the_body_clock_leaves_out_the_servers_stalls():
    """Before issue 16 the body's clock was the wall clock: the server's 2 s stall cut an honest client off."""
    with pytest.raises(RequestTimeoutError, match="minimum rate"):
        _stalled_upload(lambda: time.monotonic)
    assert _stalled_upload(_started_client_clock) == b"x" * 10 + b"y" * 10 + b"z" * 10


def test_client_clock_stands_still_during_a_stall():
    async def scenario():
        clock = ClientClock(tick_s=0.05)
        clock.start()
        await asyncio.sleep(0.2)
        before = clock()
        time.sleep(1.0)
        during = clock()  # the tick that is due has not run yet: its lateness is left out already
        await asyncio.sleep(0.2)
        after = clock()
        clock.stop()
        return during - before, after - before, clock.stalled_s

    during, after, stalled = asyncio.run(scenario())
    assert during < 0.2 and after < 0.6 and 0.8 < stalled < 1.5


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread niceness is Linux's")
def test_decode_threads_yield_the_cpu_to_the_event_loop():
    with build_decoder(1) as pool:
        nice = pool.submit(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())).result()
    assert nice == min(19, os.getpriority(os.PRIO_PROCESS, 0) + DECODE_THREAD_NICENESS)
