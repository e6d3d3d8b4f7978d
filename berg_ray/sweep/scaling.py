"""Before a sweep on accelerators starts: make the autoscaler see the demand, and wait until it is met.

A placement group of ``count`` bundles shaped like the encoder actors (``{"CPU": c, "GPU": g, "memory": m}``) is
pending demand that every Ray autoscaler acts on (the cluster launcher's, KubeRay's): it starts the nodes, the
group becomes ready, and is removed at once, so the encoder actors Ray Data then creates land on those nodes
(idle nodes stay up for the autoscaler's idle timeout, minutes). Until then one status line says what is awaited
and for how long; after ``timeout_s`` the wait gives up with a :class:`~berg_ray.errors.BergRayError` (the CLI's
one-line error, exit 2) before the sweep has written anything.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from typing import TextIO

from berg_ray.config import SweepArgs
from berg_ray.errors import BergRayError
from berg_ray.sweep.resources import Workers, size_workers

POLL_S = 1.0  # how often the wait checks the placement group and refreshes its line
QUIET_WAIT_S = 0.5  # resources placed within this are not reported (the usual case on a running GPU cluster)
PLAIN_REPORT_EVERY_S = 30.0  # without a terminal (job logs), a new line this often instead of rewriting one


class StatusLine:
    """One line on ``stream`` rewritten in place on a terminal; elsewhere a new line when the text (less its
    counters) changes or every ``PLAIN_REPORT_EVERY_S``. ``close()`` ends the line."""

    def __init__(self, stream: TextIO | None = None, enabled: bool = True) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = enabled
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._last_plain = -1e18
        self._width = 0

    def show(self, text: str, key: str = "") -> None:
        """Show ``text``; off a terminal, ``key`` (the text without its changing numbers) decides when to print."""
        if not self._enabled:
            return
        if self._tty:
            self._stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
        elif key != getattr(self, "_last_key", None) or time.monotonic() - self._last_plain >= PLAIN_REPORT_EVERY_S:
            self._stream.write(text + "\n")
            self._last_plain, self._last_key = time.monotonic(), key
        self._stream.flush()

    def say(self, text: str) -> None:
        """A line of its own (ends any line being rewritten)."""
        if self._enabled:
            self.close()
            self._stream.write(text + "\n")
            self._stream.flush()

    def close(self) -> None:
        if self._enabled and self._tty and self._width:
            self._stream.write("\n")
            self._stream.flush()
        self._width = 0


def wait_for_bundles(bundle: Mapping[str, float], count: int, timeout_s: float, what: str,
                     line: StatusLine, available: Callable[[], float] | None = None) -> float:
    """Reserve ``count`` x ``bundle`` as a placement group until it is placed, then release it.

    Args:
        bundle: resources of one encoder actor (Ray resource names -> amounts; memory in bytes).
        count: bundles to wait for (the pool's minimum size).
        timeout_s: give up after this many seconds.
        what: the awaited resources in words, e.g. ``"1 GPU"``.
        line: where the status is shown.
        available: returns the units of the awaited resource alive now (shown on the line).

    Returns:
        Seconds waited.
    Raises:
        BergRayError: not placed within ``timeout_s`` (the message names the demand and what to do).
    """
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group

    start = time.monotonic()
    group = placement_group([dict(bundle) for _ in range(count)], strategy="PACK", name="berg-ray-sweep-wait")
    try:
        ready, _ = ray.wait([group.ready()], timeout=min(QUIET_WAIT_S, timeout_s))  # already there: say nothing
        while not ready:
            waited = time.monotonic() - start
            if waited >= timeout_s:
                raise BergRayError(
                    f"waited {timeout_s:g} s for {what} ({count} encoder actor(s) of {_shape(bundle)}), but the "
                    f"cluster did not provide them: check `ray status` (node group limits, quotas, pending "
                    f"nodes), raise --resource-wait-s, or run on CPU with --device cpu; nothing was written")
            up = f", {available():g} up" if available is not None else ""
            line.show(f"waiting for {what}{up}: {waited:.0f} s of at most {timeout_s:g} s (the autoscaler sees "
                      f"the demand)", key=f"waiting{up}")
            ready, _ = ray.wait([group.ready()], timeout=min(POLL_S, max(timeout_s - waited, 0.0)))
            if ready:
                line.show(f"{what} available after {time.monotonic() - start:.0f} s", key="ready")
        return time.monotonic() - start
    finally:
        remove_placement_group(group)
        line.close()


def _shape(bundle: Mapping[str, float]) -> str:
    return ", ".join(f"{key} {value / 1e9:.2f} GB" if key == "memory" else f"{key} {value:g}"
                     for key, value in bundle.items() if value)


def plan_encoders(args: SweepArgs, n_shards: int, line: StatusLine) -> tuple[Workers, str]:
    """Choose the encoders' device, size their pool, and on accelerators wait until the first ``min_count``
    actors can be placed (Ray must be initialised). Prints the choice and its reason first.

    Returns:
        (the pool, the torch device its actors load the model on: ``cpu``, ``cuda``, or ``auto`` for a custom
        accelerator resource, which Ray does not map to CUDA devices).
    Raises:
        BergRayError: tf32 on CPU, an actor larger than any node, or accelerators not provided in time.
    """
    import ray

    from berg_ray.cluster.accelerators import Capacity, alive_resource, choose_device, cluster_capacity

    nodes = ray.nodes()
    resource = args.accelerator_resource
    capacity = (Capacity(resource, alive_resource(nodes, resource), None, "not asked (--device cpu)")
                if args.device == "cpu" else cluster_capacity(resource))
    choice = choose_device(args.device, capacity)
    line.say(f"encoders on {resource if choice.on_accelerator else 'CPU'}: {choice.reason}")
    workers = size_workers(args, n_shards, [n["Resources"] for n in nodes if n.get("Alive")], choice.on_accelerator)
    if not choice.on_accelerator:
        return workers, "cpu"
    needed = workers.min_count * workers.num_gpus
    wait_for_bundles(workers.bundle(), workers.min_count, args.resource_wait_s, f"{needed:g} {resource}", line,
                     available=lambda: alive_resource(ray.nodes(), resource))
    return workers, "cuda" if resource == "GPU" else "auto"
