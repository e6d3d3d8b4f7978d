"""CPU runtime of every process berg_ray owns: the OpenMP wait policy, the torch thread count and the heap, in one
place.

The recurrent loop runs ~25 small parallel ops per frame. With OpenMP's default wait policy the worker threads
spin between ops; on a busy machine a spinning thread keeps a core from the thread the barrier waits for, and
throughput falls several-fold (benchmarks/RESULTS.md, "CPU threads on a busy machine"). ``passive`` makes idle
threads sleep instead. The policy is read once, when the OpenMP runtime loads (``import torch``), so it is set
in the environment before that: on ``import berg_ray`` (when torch is not imported yet) and, for Ray workers,
through the runtime env of every actor berg_ray starts. A value the user set is always kept.

The heap: a CPU feed-forward pass allocates and frees ~100 MB of activations in pieces of up to 25 MB. glibc serves
pieces above an adaptive threshold with fresh mappings and trims the heap top once twice that is free, so every
pass page-faulted its activations anew (~20 MB per frame, up to ~10 % of the time at 150 units; benchmarks/
RESULTS.md, "CPU vs reference"). :func:`keep_freed_heap` fixes both thresholds so freed activations are reused. It
is called where the model is loaded (``berg_ray.checkpoint.release.load_model``: core replicas, sweep encoder actors,
the Python API and ``berg-ray encode``), never on import: a process that only decodes (the ingress, Serve's proxy,
decode tasks) would keep up to HEAP_KEEP_BYTES of every large body it freed.

This module must not import torch at module level (it runs before torch is loaded).
"""

from __future__ import annotations

import ctypes
import math
import os
import sys
from collections.abc import MutableMapping
from pathlib import Path

from berg_ray.config import DEFAULT_OMP_WAIT_POLICY, HEAP_KEEP_BYTES

_CGROUP_V2_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
_CGROUP_V1_QUOTA = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
_CGROUP_V1_PERIOD = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters (malloc.h)
_MMAP_THRESHOLD_MAX = 32 * 2**20  # glibc's largest mmap threshold on 64-bit
_GLIBC_HEAP_ENV = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")


def cgroup_cpu_limit(cpu_max: Path = _CGROUP_V2_CPU_MAX, v1_quota: Path = _CGROUP_V1_QUOTA,
                     v1_period: Path = _CGROUP_V1_PERIOD) -> float | None:
    """CPUs allowed by the cgroup CPU quota (e.g. 1.5), or None without a quota (or no readable cgroup)."""
    try:
        quota, period = cpu_max.read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us, period_us = int(v1_quota.read_text()), int(v1_period.read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def available_cpus() -> int:
    """CPUs this process may actually run on: its affinity mask, capped by the cgroup CPU quota (at least 1)."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        count = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    if limit is not None:
        count = min(count, math.ceil(limit))
    return max(1, count)


def cpu_threads(assigned: float | None = None) -> int:
    """torch intra-op threads for a process: the CPUs Ray assigned to it (rounded up) if given, never more than
    :func:`available_cpus`, at least 1."""
    available = available_cpus()
    if assigned is None or assigned <= 0:
        return available
    return max(1, min(math.ceil(assigned), available))


def ray_assigned_cpus() -> float | None:
    """CPUs Ray reserved for the current task or actor (None outside a Ray worker or when none were reserved)."""
    if "ray" not in sys.modules:
        return None
    import ray

    if not ray.is_initialized():
        return None
    context = ray.get_runtime_context()
    if context.worker.mode != ray.WORKER_MODE:
        return None
    return context.get_assigned_resources().get("CPU") or None


def set_torch_threads(threads: int | None = None) -> int:
    """Set torch's CPU threads to ``threads`` or to :func:`cpu_threads` of this process (Ray's reservation inside a
    Ray worker); returns the count set."""
    import torch

    count = threads if threads is not None else cpu_threads(ray_assigned_cpus())
    torch.set_num_threads(count)
    return count


def openmp_env_vars(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Environment variables for the runtime env of Ray actors berg_ray starts: the wait policy of this process
    (the user's, or the default)."""
    environ = os.environ if environ is None else environ
    return {"OMP_WAIT_POLICY": environ.get("OMP_WAIT_POLICY") or DEFAULT_OMP_WAIT_POLICY}


def runtime_env() -> dict[str, dict[str, str]]:
    """A Ray ``runtime_env`` carrying :func:`openmp_env_vars` (merged by Ray with the job's runtime env)."""
    return {"env_vars": openmp_env_vars()}


def default_openmp_env(environ: MutableMapping[str, str] | None = None) -> bool:
    """Set ``OMP_WAIT_POLICY`` (if the user has not) and cap ``OMP_NUM_THREADS`` to a cgroup CPU quota stricter
    than the affinity mask, before the OpenMP runtime loads.

    Returns:
        True if the settings can still take effect in this process (torch not imported yet). When torch is
        already loaded nothing is changed: the variables would no longer apply here.
    """
    environ = os.environ if environ is None else environ
    if "torch" in sys.modules:
        return False
    environ.setdefault("OMP_WAIT_POLICY", DEFAULT_OMP_WAIT_POLICY)
    limit = cgroup_cpu_limit()
    if "OMP_NUM_THREADS" not in environ and limit is not None:
        try:
            affinity = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            affinity = os.cpu_count() or 1
        if math.ceil(limit) < affinity:
            environ["OMP_NUM_THREADS"] = str(available_cpus())
    return True


def keep_freed_heap(keep_bytes: int = HEAP_KEEP_BYTES, environ: MutableMapping[str, str] | None = None) -> bool:
    """Make glibc's malloc reuse freed activations instead of returning them to the OS (see the module docstring).

    Allocations up to 32 MiB come from the heap (the adaptive mmap threshold would otherwise start at 128 KiB) and
    up to ``keep_bytes`` of free memory stays in it. Heap settings the user made through glibc's environment
    variables are kept. Returns True where applied; False elsewhere (not glibc, e.g. macOS or musl: nothing
    changes) or when the user set them.
    """
    environ = os.environ if environ is None else environ
    if not sys.platform.startswith("linux") or any(name in environ for name in _GLIBC_HEAP_ENV):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(mallopt(_M_TRIM_THRESHOLD, keep_bytes))
