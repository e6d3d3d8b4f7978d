"""Reading a request body from the ASGI ``receive`` channel within a size limit, a deadline and a minimum rate.

Serve's HTTP proxy does not buffer bodies: it forwards the request to the ingress at once and the ingress pulls
the body message by message, holding one of its slots meanwhile. So the ingress bounds that time itself: after a
grace period the body's average rate since its start must stay above a minimum, and the whole body must arrive
within a hard deadline; otherwise the request ends with 408. A stalled client, a trickling client and a body
shorter than its Content-Length all end this way.

These clocks measure the client only: the ingress passes ``ClientClock``, which leaves out the time its event
loop was stalled (by other work of the replica), and a receive that the deadline overtook during such a stall is
kept, not cancelled, so no message is lost and no honest client is cut off for the server's own delay.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from berg_ray.config import ECHO_CHARS, MAX_NUMBER_DIGITS
from berg_ray.errors import BergRayError
from berg_ray.validation.numbers import ascii_int
from berg_ray.serve.protocol import RequestTimeoutError, RequestTooLargeError

Receive = Callable[[], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class BodyLimits:
    """Limits of one request body.

    Attributes:
        max_bytes: largest body (413 beyond).
        grace_s: seconds before the minimum rate applies.
        min_bytes_per_s: least average rate since the body's start, after the grace period.
        timeout_s: hard deadline for the whole body, seconds.
    """

    max_bytes: int
    grace_s: float
    min_bytes_per_s: float
    timeout_s: float

    def deadline_s(self, received: int) -> float:
        """Seconds after the start by which more than ``received`` bytes (or the end of the body) must arrive."""
        return min(self.timeout_s, self.grace_s + received / self.min_bytes_per_s)


async def read_body(receive: Receive, content_length: str | None, limits: BodyLimits,
                    clock: Callable[[], float] = time.monotonic) -> bytes:
    """The whole request body, read message by message from the ASGI ``receive`` callable.

    Args:
        receive: the ASGI receive channel of an HTTP request.
        content_length: the Content-Length header, if any (a larger one is refused before reading).
        limits: size, deadline and minimum rate.
        clock: monotonic seconds of the client's time (the ingress passes a ClientClock).
    Raises:
        RequestTooLargeError: the body is (or is declared) larger than ``limits.max_bytes``.
        RequestTimeoutError: the body fell behind the minimum rate or missed the deadline.
        BergRayError: the client disconnected, the Content-Length is not a number in ASCII digits, or the body's
            length differs from it.
    """
    declared = None if content_length is None else ascii_int(content_length)
    if content_length is not None and declared is None:
        raise BergRayError(f"Content-Length {content_length[:ECHO_CHARS]!r} is not a byte count in ASCII digits "
                           f"(at most {MAX_NUMBER_DIGITS}); "
                           "send the body's length in bytes (or no Content-Length)")
    if declared is not None and declared > limits.max_bytes:
        raise RequestTooLargeError(f"request body of {declared} bytes exceeds the limit of {limits.max_bytes} "
                                   "bytes; send fewer or shorter videos per request")
    start, chunks, size = clock(), [], 0
    while True:
        message = await _receive_by(receive, lambda: limits.deadline_s(size) - (clock() - start))
        if message is None:
            raise _timeout(size, declared, clock() - start, limits)
        if message["type"] == "http.disconnect":
            raise BergRayError(f"the client disconnected after sending {size} bytes of the request body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limits.max_bytes:
            raise RequestTooLargeError(f"request body exceeds the limit of {limits.max_bytes} bytes; send fewer or "
                                       "shorter videos per request")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    if declared is not None and size != declared:
        raise BergRayError(f"request body has {size} bytes but Content-Length says {declared}")
    return b"".join(chunks)


async def _receive_by(receive: Receive, remaining_s: Callable[[], float]) -> dict[str, Any] | None:
    """The next ASGI message, or None once ``remaining_s()`` (seconds left on the body's clock) is not positive.

    A wait that ran out is checked against the clock again rather than ended: with a clock that leaves out the
    server's stalls, the client still has time, and its message (perhaps already there) is kept."""
    task = asyncio.ensure_future(receive())
    try:
        while (wait := remaining_s()) > 0:
            done, _ = await asyncio.wait({task}, timeout=wait)
            if done:
                return task.result()
        return None
    finally:
        task.cancel()  # no effect on a finished task


def _timeout(size: int, declared: int | None, elapsed: float, limits: BodyLimits) -> RequestTimeoutError:
    of = f" of {declared}" if declared is not None else ""
    if elapsed >= limits.timeout_s:
        return RequestTimeoutError(f"request body incomplete after {elapsed:.0f} s ({size}{of} bytes received); "
                                   f"the deadline for a whole body is {limits.timeout_s:g} s: send less per request")
    return RequestTimeoutError(
        f"request body too slow: {size}{of} bytes in {elapsed:.1f} s; after {limits.grace_s:g} s a body must arrive "
        f"at the minimum rate of {limits.min_bytes_per_s:g} bytes/s (and complete within {limits.timeout_s:g} s)")


class ClientClock:
    """Monotonic seconds that stand still while the running event loop is stalled.

    A ticker task wakes every ``tick_s`` seconds; whatever it wakes late is time the loop could not run (blocking
    work of the replica, an overloaded host) and is left out, as is the lateness of a tick still due. Call
    ``start`` from the event loop before reading; a new loop (a test's) starts a new ticker.
    """

    def __init__(self, tick_s: float = 0.05, base: Callable[[], float] = time.monotonic) -> None:
        self._tick_s, self._base = tick_s, base
        self._stalled, self._last = 0.0, base()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the ticker on the running event loop, unless it runs there already."""
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._last = self._base()
            self._task = loop.create_task(self._tick())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    @property
    def stalled_s(self) -> float:
        """Seconds left out so far (the loop's stalls, a tick still due included)."""
        return self._stalled + max(0.0, self._base() - self._last - self._tick_s)

    def __call__(self) -> float:
        return self._base() - self.stalled_s

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._tick_s)
            now = self._base()
            self._stalled += max(0.0, now - self._last - self._tick_s)
            self._last = now
