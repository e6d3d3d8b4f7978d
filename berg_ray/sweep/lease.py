"""One sweep at a time per output: the lease object ``OUTPUT/_lease.json``.

A sweep creates the lease with a conditional write before any compute (local: ``O_CREAT | O_EXCL``; S3:
``PutObject`` with ``If-None-Match: *``), so of two sweeps started together exactly one wins, and the other is
refused with an error naming the holder (host, pid, run id, start time). While the sweep runs, a heartbeat
thread rewrites the lease every ``heartbeat_s`` with a compare-and-swap on its version (local: under an flock;
S3: ``If-Match: ETag``). A lease not rewritten for its ``ttl_s`` (measured by the store's clock: local mtime,
S3 ``LastModified`` against the response's ``Date``) belongs to a dead run: the next sweep takes it over with
the same compare-and-swap, so a killed sweep blocks its output for at most ``ttl_s``. The lease is deleted
(if still ours) when the sweep ends, whether it succeeded or failed.

While a sweep holds the lease no other sweep writes to the output, so staging files found there belong to
killed runs and may be removed (``Store.remove_staging``).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field

from berg_ray.config import SWEEP_LEASE_HEARTBEAT_S, SWEEP_LEASE_TTL_S
from berg_ray.errors import StorageError
from berg_ray.storage import Store

LEASE_FILE = "_lease.json"
_ACQUIRE_ATTEMPTS = 3  # create / take over races lost in a row before giving up


@dataclass
class Lease:
    """A held lease; use as a context manager (``with acquire(store): ...``) or call :meth:`release`."""

    store: Store
    run_id: str
    version: str
    body: dict
    heartbeat_s: float
    lost: str | None = None  # set by the heartbeat if another sweep took the lease over
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()

    def start_heartbeat(self) -> None:
        self._thread = threading.Thread(target=self._beat, name=f"sweep-lease-{self.run_id}", daemon=True)
        self._thread.start()

    def renew(self) -> bool:
        """Rewrite the lease if it is still ours; False (and ``lost`` set) if another sweep holds it now."""
        body = {**self.body, "renewed": time.time()}
        version = self.store.put_if(LEASE_FILE, _encode(body), self.version)
        if version is None:
            current = self.store.read_versioned(LEASE_FILE)
            self.lost = describe(json_or_none(current[0])) if current else "nobody (the lease was deleted)"
            return False
        self.version, self.body = version, body
        return True

    def release(self) -> None:
        """Stop the heartbeat and delete the lease if it is still ours (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.lost is None:
            try:
                self.store.delete_if(LEASE_FILE, self.version)
            except StorageError as exc:  # it expires by itself after its TTL
                print(f"warning: cannot release the sweep lease ({exc})", file=sys.stderr, flush=True)

    def check(self) -> None:
        """Raise if the lease was taken over while this sweep ran (its output may then hold duplicate rows)."""
        if self.lost is not None:
            raise StorageError(f"this sweep lost its lease on {self.store.uri} to {self.lost} (it was not renewed "
                               f"for longer than its TTL); both sweeps wrote there, so check the output for "
                               f"duplicate (stimulus_id, train_session) rows or rewrite it to a new --out")

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                if not self.renew():
                    return
            except StorageError as exc:  # transient: try again next beat; the TTL allows a few misses
                print(f"warning: cannot renew the sweep lease ({exc})", file=sys.stderr, flush=True)


def acquire(store: Store, ttl_s: float = SWEEP_LEASE_TTL_S, heartbeat_s: float | None = None) -> Lease:
    """Take the output's lease (creating it, or taking over an expired one) and start its heartbeat.

    Args:
        store: the output.
        ttl_s: seconds without renewal after which the lease counts as abandoned.
        heartbeat_s: seconds between renewals (default ``ttl_s * HEARTBEAT / TTL`` of the config, i.e. TTL / 4).

    Raises:
        StorageError: another live sweep holds the lease (the message names it and how long it stays valid).
    """
    heartbeat_s = heartbeat_s or ttl_s * SWEEP_LEASE_HEARTBEAT_S / SWEEP_LEASE_TTL_S
    run_id = uuid.uuid4().hex[:12]
    body = {"run_id": run_id, "host": socket.gethostname(), "pid": os.getpid(), "started": time.time(),
            "renewed": time.time(), "ttl_s": ttl_s}
    for _ in range(_ACQUIRE_ATTEMPTS):
        version = store.put_if(LEASE_FILE, _encode(body), None)
        if version is None:
            current = store.read_versioned(LEASE_FILE)
            if current is None:
                continue  # released between our two requests: try to create it again
            data, held_version, age_s = current
            holder = json_or_none(data)
            if holder is not None and holder.get("run_id") == run_id:  # our create succeeded; its reply was lost
                version = held_version
            else:
                holder_ttl = _ttl_of(holder, ttl_s)
                if age_s <= holder_ttl:
                    raise StorageError(
                        f"{store.uri} is being written by another sweep ({describe(holder)}; lease renewed "
                        f"{max(age_s, 0):.0f} s ago): wait until it ends or write to another --out. If that "
                        f"sweep is dead, its lease expires {max(holder_ttl - age_s, 0):.0f} s from now and the next "
                        f"run takes over (or delete {store.uri_of(LEASE_FILE)} once you are sure)")
                version = store.put_if(LEASE_FILE, _encode(body), held_version)  # take over the expired lease
        if version is not None:
            lease = Lease(store, run_id, version, body, heartbeat_s)
            lease.start_heartbeat()
            return lease
    raise StorageError(f"could not take the lease {store.uri_of(LEASE_FILE)}: other sweeps keep racing for it; "
                       f"run one sweep per --out")


def describe(holder: dict | None) -> str:
    """Human-readable owner of a lease body."""
    if holder is None:
        return "an unknown sweep (unreadable lease)"
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(holder.get("started", 0))))
    return (f"run {holder.get('run_id', '?')} on host {holder.get('host', '?')}, pid {holder.get('pid', '?')}, "
            f"started {started}")


def json_or_none(data: bytes) -> dict | None:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _ttl_of(holder: dict | None, default: float) -> float:
    try:
        return float(holder["ttl_s"]) if holder is not None else default
    except (KeyError, TypeError, ValueError):
        return default


def _encode(body: dict) -> bytes:
    return json.dumps(body, sort_keys=True).encode()
