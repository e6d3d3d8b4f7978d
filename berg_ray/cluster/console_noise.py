"""Keep Ray's known, harmless native log lines off the console while Ray runs in this process.

Ray's own Python loggers are sent to its log files (berg_ray.cluster.session), but the driver's C++ core worker writes
its error-level lines straight to file descriptor 2. One of them appears in every sweep and experiment and asks
nothing of the user: Ray Data's actor pools pass their map function by object reference and keep
``max_restarts=-1`` for fault tolerance, so Ray warns, for each encoder actor, that a lost argument would prevent
a restart (``core_worker.cc: Actor with class name: 'MapWorker(...)' ... max_restarts > 0``).

:func:`filter_stderr` routes fd 2 through a pipe whose reader thread drops lines matching :data:`KNOWN_NOISE` and
copies everything else through unchanged and at once (a partial line is held only while it can still become a Ray
native log line, so progress bars keep updating). ``--verbose`` turns the filter off.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Iterator, Sequence

KNOWN_NOISE = (
    re.compile(rb"core_worker\.cc:\d+: Actor with class name: '[^']*MapWorker\(.*max_restarts > 0"),
)
_NATIVE_LINE = re.compile(rb"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [DIWEF] \d+ \d+\] ")
_NATIVE_PREFIX_LEN = 40  # a held partial line longer than this without matching _NATIVE_LINE is let through


class _Pump(threading.Thread):
    """Copies the pipe to ``target`` line by line, dropping noise."""

    def __init__(self, read_fd: int, target_fd: int, patterns: Sequence[re.Pattern[bytes]]) -> None:
        super().__init__(name="berg-ray-stderr-filter", daemon=True)
        self.read_fd, self.target_fd, self.patterns = read_fd, target_fd, patterns
        self.dropped = 0

    def run(self) -> None:
        pending = b""
        while chunk := os.read(self.read_fd, 65536):
            pending = self._emit(pending + chunk)
        self._write(pending)
        os.close(self.read_fd)

    def _emit(self, data: bytes) -> bytes:
        *lines, tail = data.split(b"\n")
        for line in lines:
            if any(p.search(line) for p in self.patterns):
                self.dropped += 1
            else:
                self._write(line + b"\n")
        if tail and not _may_be_native(tail):
            self._write(tail)
            tail = b""
        return tail

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.target_fd, view):]
            except OSError:
                return  # the console is gone: nothing to show the line on


def _may_be_native(partial: bytes) -> bool:
    """Whether an unfinished line could still be a Ray native log line (held back until its newline)."""
    if len(partial) > _NATIVE_PREFIX_LEN:
        return bool(_NATIVE_LINE.match(partial))
    return partial.startswith(b"[") and all(c in b"[0123456789-: ,DIWEF]" for c in partial)


@contextlib.contextmanager
def filter_stderr(patterns: Sequence[re.Pattern[bytes]] = KNOWN_NOISE, enabled: bool = True) -> Iterator[None]:
    """Drop lines matching ``patterns`` from file descriptor 2 (Python's and native writers') inside the block."""
    if not enabled:
        yield
        return
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    saved = os.dup(2)
    read_fd, write_fd = os.pipe()
    pump = _Pump(read_fd, saved, patterns)
    pump.start()
    os.dup2(write_fd, 2, inheritable=False)  # processes started inside keep writing to the pipe only if they inherit 2
    os.close(write_fd)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last writer is gone (unless a child kept it): the pump drains and ends
        pump.join(timeout=2.0)
        os.close(saved)
