"""Resources of a sweep's encoder actors: how many, and the CPUs, GPUs and memory each one reserves.

Each actor reserves Ray ``memory`` for what it holds at its peak, so that Ray never places more actors on a node
than the node's memory holds (``memory`` is a Ray resource like ``CPU``: a node offers a fixed amount and Ray
schedules against it). On CPU that is the loaded model plus the activations of one forward call, which grow with
``batch_size x chunk_frames`` (constants measured in berg_ray/config/sweep.py); on a GPU the activations live in GPU memory.
A micro-batch whose actor fits no node is refused before any compute.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from berg_ray.config import (SWEEP_ACTOR_BASE_BYTES, SWEEP_ACTOR_BYTES_PER_FRAME, SWEEP_ACTOR_BYTES_PER_VIDEO,
                             SWEEP_DECODE_NUM_CPUS, SWEEP_MAX_CPU_THREADS_PER_WORKER, SweepArgs)
from berg_ray.errors import BergRayError


@dataclass(frozen=True)
class Workers:
    """The encoder actor pool: ``count`` actors, each reserving these CPUs, GPUs and bytes of memory."""

    count: int
    num_cpus: float
    num_gpus: float
    memory: int


def actor_memory_bytes(batch_size: int, chunk_frames: int, on_gpu: bool) -> int:
    """Host memory (bytes) one encoder actor needs at its peak: the loaded model, plus on CPU the activations of
    one forward call of ``batch_size`` videos x ``chunk_frames`` frames."""
    if on_gpu:
        return SWEEP_ACTOR_BASE_BYTES
    per_video = SWEEP_ACTOR_BYTES_PER_VIDEO + chunk_frames * SWEEP_ACTOR_BYTES_PER_FRAME
    return SWEEP_ACTOR_BASE_BYTES + batch_size * per_video


def size_workers(args: SweepArgs, n_shards: int, nodes: Sequence[Mapping[str, float]]) -> Workers:
    """The actor pool for a cluster: one actor per GPU share, else CPU actors sized to the cluster's CPUs
    (leaving room for the decode tasks); never more actors than there are micro-batches or than fit in the
    nodes' memory.

    Args:
        args: the sweep's options (batch_size, chunk_frames, num_workers, num_*_per_worker).
        n_shards: micro-batches to encode.
        nodes: the ``Resources`` of each alive Ray node (``CPU``, ``GPU``, ``memory`` in bytes).

    Raises:
        BergRayError: one actor needs more memory than any node offers (names the numbers and the fix).
    """
    gpus, cpus = sum(n.get("GPU", 0.0) for n in nodes), sum(n.get("CPU", 0.0) for n in nodes) or 1.0
    on_gpu = gpus > 0 and args.num_gpus_per_worker > 0
    if args.precision == "tf32" and not on_gpu:
        raise BergRayError("precision 'tf32' needs GPU encoder actors, but this cluster has no GPU (or "
                           "--num-gpus-per-worker is 0); use --precision float32 or bfloat16")
    memory = actor_memory_bytes(args.batch_size, args.chunk_frames, on_gpu)
    largest = max((n.get("memory", 0.0) for n in nodes), default=0.0)
    if memory > largest:
        per_frame = "" if on_gpu else (f" + {args.batch_size} x ({SWEEP_ACTOR_BYTES_PER_VIDEO / 1e6:.0f} MB + "
                                       f"{args.chunk_frames} x {SWEEP_ACTOR_BYTES_PER_FRAME / 1e6:.1f} MB) of "
                                       f"activations for {args.batch_size} x {args.chunk_frames} frames")
        raise BergRayError(f"an encoder actor needs {memory / 1e9:.2f} GB ({SWEEP_ACTOR_BASE_BYTES / 1e6:.0f} MB "
                           f"model{per_frame}), but the largest Ray node offers {largest / 1e9:.2f} GB of memory; "
                           f"lower --batch-size or --chunk-frames (results do not depend on them) or add memory")
    fit = sum(int(n.get("memory", 0.0) // memory) for n in nodes)
    if on_gpu:
        count = args.num_workers or max(1, int(gpus // args.num_gpus_per_worker))
        return Workers(max(1, min(count, n_shards, fit)), args.num_cpus_per_worker or 1.0, args.num_gpus_per_worker,
                       memory)
    free = max(cpus - SWEEP_DECODE_NUM_CPUS, SWEEP_DECODE_NUM_CPUS)
    per_worker = args.num_cpus_per_worker
    if per_worker is None:
        per_worker = min(float(SWEEP_MAX_CPU_THREADS_PER_WORKER), free / (args.num_workers or 1))
    count = args.num_workers or max(1, math.floor(free / per_worker))
    return Workers(max(1, min(count, n_shards, fit)), per_worker, 0.0, memory)
