"""Admission control of the ingress: bounded counts of requests and bytes in one stage, refused (never queued) beyond.

The ingress admits at most ``max_uploads`` bodies being received or decoded, ``max_decoded_bytes`` of decoded
requests and ``max_encodes`` requests waiting on the core at once. A request beyond a limit gets OverloadedError at
once (HTTP 503 JSON with Retry-After), long before Serve's own slots or the proxy's queue fill up, so every
overload answer a client sees is ours.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from berg_ray.serve.protocol import OverloadedError, RequestTooLargeError


class Gate:
    """A counter of requests inside one stage, with a hard limit (single asyncio loop: no lock needed).

    ``observe`` (optional) is called with the new count of requests inside after every change (a metrics gauge).
    """

    def __init__(self, name: str, limit: int, observe: Callable[[int], None] | None = None) -> None:
        self.name, self.limit, self.active = name, limit, 0
        self._observe = observe

    @contextlib.contextmanager
    def admit(self) -> Iterator[None]:
        """Hold one place for the duration of the block; OverloadedError if all ``limit`` places are taken."""
        if self.active >= self.limit:
            raise OverloadedError(f"the service is at capacity ({self.active} {self.name} in progress, the limit "
                                  f"of this replica); retry later")
        self._change(1)
        try:
            yield
        finally:
            self._change(-1)

    def _change(self, step: int) -> None:
        self.active += step
        if self._observe is not None:
            self._observe(self.active)


class ByteBudget:
    """A count of bytes held by requests inside one stage, with a hard limit (single asyncio loop: no lock needed).

    ``observe`` (optional) is called with the new count of bytes held after every change (a metrics gauge).
    """

    def __init__(self, name: str, limit: int, observe: Callable[[int], None] | None = None) -> None:
        self.name, self.limit, self.held = name, limit, 0
        self._observe = observe

    @contextlib.contextmanager
    def reserve(self, size: int) -> Iterator[None]:
        """Hold ``size`` bytes for the duration of the block.

        Raises:
            RequestTooLargeError: ``size`` alone exceeds the limit (the request can never fit).
            OverloadedError: ``size`` does not fit beside the bytes other requests hold now.
        """
        if size > self.limit:
            raise RequestTooLargeError(f"the request decodes to {size} bytes, over the limit of {self.limit} "
                                       f"{self.name} bytes per replica; send fewer or shorter videos per request")
        if self.held + size > self.limit:
            raise OverloadedError(f"the service is at capacity ({self.held} {self.name} bytes held, {size} more "
                                  f"would exceed the limit of {self.limit} of this replica); retry later")
        self._change(size)
        try:
            yield
        finally:
            self._change(-size)

    def _change(self, step: int) -> None:
        self.held += step
        if self._observe is not None:
            self._observe(self.held)
