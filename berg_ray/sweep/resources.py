"""Resources of a sweep's encoder actors: how many, and the CPUs, GPUs and memory each one reserves.

Each actor reserves Ray ``memory`` for what it holds at its peak, so that Ray never places more actors on a node
than the node's memory holds (``memory`` is a Ray resource like ``CPU``: a node offers a fixed amount and Ray
schedules against it). On CPU that is the loaded model plus the activations of one forward call, which grow with
``batch_size x chunk_frames`` (constants measured in berg_ray/config/sweep.py); on a GPU the activations live in
GPU memory. A micro-batch whose actor fits no node is refused before any compute. GPU pools autoscale: the nodes
they need may not exist yet (scaling.py waits for the first ones), and their actors reserve no Ray ``memory``: a
GPU actor's host memory is the model alone (~0.45 GB, nothing next to a GPU node's), and an autoscaler node type
that does not declare ``memory`` (custom launcher types often do not) would otherwise never be started for it.
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
    """The encoder actor pool: between ``min_count`` and ``max_count`` actors (equal: a fixed pool), each reserving
    ``num_cpus`` CPUs, ``num_gpus`` units of ``accelerator`` (0 on CPU) and ``memory`` bytes."""

    min_count: int
    max_count: int
    num_cpus: float
    num_gpus: float
    memory: int
    accelerator: str = "GPU"

    @property
    def count(self) -> int:
        """The pool's size when fixed; its largest size when autoscaled."""
        return self.max_count

    def actor_options(self) -> dict:
        """Ray remote options of one actor: ``num_gpus`` for Ray's GPU resource, ``resources`` for a custom one."""
        options: dict = {"num_cpus": self.num_cpus}
        if self.memory:
            options["memory"] = self.memory
        if self.num_gpus and self.accelerator == "GPU":
            options["num_gpus"] = self.num_gpus
        elif self.num_gpus:
            options["resources"] = {self.accelerator: self.num_gpus}
        return options

    def bundle(self) -> dict[str, float]:
        """One actor's resources as a placement-group bundle."""
        bundle = {"CPU": self.num_cpus, self.accelerator: self.num_gpus, "memory": float(self.memory)}
        return {key: value for key, value in bundle.items() if value}


def actor_memory_bytes(batch_size: int, chunk_frames: int, on_gpu: bool) -> int:
    """Host memory (bytes) one encoder actor needs at its peak: the loaded model, plus on CPU the activations of
    one forward call of ``batch_size`` videos x ``chunk_frames`` frames."""
    if on_gpu:
        return SWEEP_ACTOR_BASE_BYTES
    per_video = SWEEP_ACTOR_BYTES_PER_VIDEO + chunk_frames * SWEEP_ACTOR_BYTES_PER_FRAME
    return SWEEP_ACTOR_BASE_BYTES + batch_size * per_video


def size_workers(args: SweepArgs, n_shards: int, nodes: Sequence[Mapping[str, float]], on_gpu: bool) -> Workers:
    """The actor pool: on GPUs an autoscaled pool (``min_workers``..``max_workers``, or ``num_workers`` fixed)
    whose actors the autoscaler may still have to start nodes for (reserving no Ray memory, see the module
    docstring); on CPU actors sized to the cluster's CPUs
    (leaving room for the decode tasks). Never more actors than micro-batches; CPU pools never more than fit in
    the nodes' memory.

    Args:
        args: the sweep's options (batch_size, chunk_frames, num_workers, min/max_workers, num_*_per_worker).
        n_shards: micro-batches to encode.
        nodes: the ``Resources`` of each alive Ray node (``CPU``, ``GPU``, ``memory`` in bytes).
        on_gpu: the device choice (berg_ray.cluster.accelerators.choose_device).

    Raises:
        BergRayError: one actor needs more memory than any node offers (names the numbers and the fix), or
            tf32 or Triton kernels on CPU.
    """
    if args.precision == "tf32" and not on_gpu:
        raise BergRayError("precision 'tf32' needs GPU encoder actors, but this sweep runs on CPU (--device cpu, or "
                           "a cluster without GPUs); use --precision float32 or bfloat16, or --device cuda")
    if args.kernels == "triton" and not on_gpu:
        raise BergRayError("kernels 'triton' needs GPU encoder actors, but this sweep runs on CPU (--device cpu, or "
                           "a cluster without GPUs); use kernels 'torch', or --device cuda")
    memory = actor_memory_bytes(args.batch_size, args.chunk_frames, on_gpu)
    if on_gpu:  # GPU nodes may not exist yet: the autoscaler starts them for the pool (no memory reserved)
        low = args.num_workers or args.min_workers or 1
        high = args.num_workers or args.max_workers or n_shards
        high = max(1, min(high, n_shards))
        return Workers(min(low, high), high, args.num_cpus_per_worker or 1.0, args.num_gpus_per_worker, 0,
                       args.accelerator_resource)
    cpus = sum(n.get("CPU", 0.0) for n in nodes) or 1.0
    _check_fits(args, memory, nodes)
    fit = sum(int(n.get("memory", 0.0) // memory) for n in nodes)
    free = max(cpus - SWEEP_DECODE_NUM_CPUS, SWEEP_DECODE_NUM_CPUS)
    per_worker = args.num_cpus_per_worker
    if per_worker is None:
        per_worker = min(float(SWEEP_MAX_CPU_THREADS_PER_WORKER), free / (args.num_workers or 1))
    count = max(1, min(args.num_workers or max(1, math.floor(free / per_worker)), n_shards, fit))
    return Workers(count, count, per_worker, 0.0, memory)


def _check_fits(args: SweepArgs, memory: int, nodes: Sequence[Mapping[str, float]]) -> None:
    largest = max((n.get("memory", 0.0) for n in nodes), default=0.0)
    if memory > largest:
        per_frame = (f" + {args.batch_size} x ({SWEEP_ACTOR_BYTES_PER_VIDEO / 1e6:.0f} MB + {args.chunk_frames} x "
                     f"{SWEEP_ACTOR_BYTES_PER_FRAME / 1e6:.1f} MB) of activations for {args.batch_size} x "
                     f"{args.chunk_frames} frames")
        raise BergRayError(f"an encoder actor needs {memory / 1e9:.2f} GB ({SWEEP_ACTOR_BASE_BYTES / 1e6:.0f} MB "
                           f"model{per_frame}), but the largest Ray node offers {largest / 1e9:.2f} GB of memory; "
                           f"lower --batch-size or --chunk-frames (results do not depend on them) or add memory")
