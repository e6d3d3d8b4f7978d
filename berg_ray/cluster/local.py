"""Ray for a command: join a cluster, or start a local one whose processes all end with the command.

``ray.init()`` without an address starts a local cluster owned by this process. Ray ends its GCS and raylet when
the owner exits (or dies: they share its fate through the kernel), but the agents the raylet starts
(``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``) and the workers outlive them, reparented to PID 1, for about
a minute. ``ray.init`` also replaces the SIGTERM handler of the process, so a command that stops cleanly on SIGINT
died with exit 134 on SIGTERM.

``ray_session`` fixes both in one place for every command (``berg-ray serve``, sweeps): it keeps the caller's
SIGTERM handler, and when it starts a local cluster it also starts a small reaper process (standard library only,
its own session so a terminal's Ctrl-C does not reach it first) that waits for the owner to close a pipe, which
the kernel does when the owner exits or is killed, even by SIGKILL, and then ends every process of that Ray session. Ray's
daemons rename themselves (``ray::...``), so a process belongs to the session when its command line or one of its
open files lies under the session directory (``/tmp/ray/session_*``: every Ray process logs there).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

REAP_GRACE_S = 5.0  # SIGTERM first; processes still alive after this get SIGKILL
REAPER_WAIT_S = 30.0  # how long the owner waits for the reaper at a clean exit


def session_pids(session_dir: str, exclude: frozenset[int] = frozenset()) -> list[int]:
    """Pids of the live processes of one Ray session (matched by command line or open files under its dir)."""
    session_dir = session_dir.rstrip("/")  # unique: the name holds the start time (us) and the owner's pid
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in exclude:
            continue
        with contextlib.suppress(OSError):
            with open(f"/proc/{entry}/cmdline", "rb") as file:
                if session_dir.encode() in file.read() or _has_open_file_under(entry, session_dir + "/"):
                    found.append(int(entry))
    return found


def _has_open_file_under(pid: str, root: str) -> bool:
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(root):
                return True
    return False


def end_session_processes(session_dir: str, owner: int, grace_s: float = REAP_GRACE_S) -> list[int]:
    """SIGTERM every process of the session but ``owner`` and this one, SIGKILL those still alive after
    ``grace_s``; returns the pids found."""
    exclude = frozenset({os.getpid(), owner})
    pids = session_pids(session_dir, exclude)
    for signum, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, grace_s)):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)
        deadline = time.monotonic() + wait_s
        while session_pids(session_dir, exclude) and time.monotonic() < deadline:
            time.sleep(0.1)
    return pids


def start_reaper(session_dir: str) -> subprocess.Popen:
    """A process that ends the session's processes once our end of its stdin pipe closes (exit or death)."""
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), session_dir, str(os.getpid())],
                            stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            close_fds=True)


@contextlib.contextmanager
def ray_session(address: str | None = None, verbose: bool = False, **init_kwargs: Any) -> Iterator[bool]:
    """Use Ray for the duration of the block; yields True when this process started (owns) a local cluster.

    Args:
        address: a cluster to join; None joins ``RAY_ADDRESS`` if set, else starts a local cluster.
        verbose: show Ray's own logs on the console (else they go to Ray's log files, berg_ray.cluster.session).
        **init_kwargs: further keyword arguments of ``berg_ray.cluster.session.init_ray`` (``metrics_export_port``) and
            ``ray.init``.
    Nothing is started when Ray is already initialised in this process (the caller owns it). A local cluster
    is shut down at the end of the block and every process of its session is gone when the block exits; if
    this process dies instead, the reaper ends them within seconds.
    """
    import ray

    if ray.is_initialized():
        yield False
        return
    owns = not (address or os.environ.get("RAY_ADDRESS"))
    handler = signal.getsignal(signal.SIGTERM)
    from berg_ray.cluster.console_noise import filter_stderr
    from berg_ray.cluster.session import init_ray

    init_ray(address, verbose, **init_kwargs)
    if threading.current_thread() is threading.main_thread() and handler is not None:
        signal.signal(signal.SIGTERM, handler)  # ray.init installs its own, which exits mid-work
    reaper = start_reaper(ray._private.worker._global_node.get_session_dir_path()) if owns else None
    try:
        with filter_stderr(enabled=not verbose):  # after init: Ray's own processes keep their log files
            yield owns
    finally:
        ray.shutdown()
        if reaper is not None:
            reaper.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                reaper.wait(timeout=REAPER_WAIT_S)


if __name__ == "__main__":  # the reaper: python local_ray.py SESSION_DIR OWNER_PID (stdin: a pipe from the owner)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.stdin.buffer.read()  # returns at EOF: the owner closed the pipe, exited or died
    end_session_processes(sys.argv[1], int(sys.argv[2]))
