"""Where the MEI experiment computes: one model in this process, or a pool of Ray actors across a cluster.

Work is a list of :class:`Job` (``optimise``: a batch of units of one scan; ``rates``: videos through the ordinary
inference path). :func:`mei_workers` gives a runner that hands each result to a callback as it arrives (the
driver writes it at once, so a killed run keeps every finished unit). On Ray the pool is planned as a sweep's encoder pool is
(berg_ray.sweep.scaling.plan_encoders: --device, the pool flags, waiting for the first GPUs), and a job goes only
to an actor that is up, so actors still waiting for an autoscaled node hold no work. The actors touch no storage
but the release (the driver reads and writes every MEI), so a local --out works on a multi-node cluster too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Job:
    """One call of a :class:`MeiWorker` method: ``method`` ("optimise" or "rates") with ``args`` (a tuple, or a
    function returning it, called when the job is handed out: large inputs are read only then); ``key`` names the
    job for the callback."""

    method: str
    args: tuple | Callable[[], tuple]
    key: Any

    def arguments(self) -> tuple:
        return self.args() if callable(self.args) else self.args


class MeiWorker:
    """The model of the experiment's scans on one device; optimises MEIs and runs videos through inference."""

    def __init__(self, berg_dir: str, s3_endpoint_url: str | None, scans: Sequence[str], device: str,
                 precision: str, validation: tuple[int, int]) -> None:
        from berg_ray.checkpoint.release import load_model
        from berg_ray.download import resolve_berg_dir
        from berg_ray.storage.s3 import s3_options_for
        from berg_ray.runtime.threads import set_torch_threads

        set_torch_threads()
        release = resolve_berg_dir(berg_dir, s3_options_for(berg_dir, s3_endpoint_url))
        self.model = load_model(release, list(scans), device=device, precision=precision)
        self.validation = validation

    def ready(self) -> bool:
        return True

    def optimise(self, scan: str, readout_ids: Sequence[int], settings):
        """(berg_ray.mei.optimise_meis of ``readout_ids`` of ``scan`` (a MeiResult), the id of the Ray node that
        computed it, "" outside Ray)."""
        from berg_ray.mei import optimise_meis

        return optimise_meis(self.model, scan, readout_ids, settings), _node_id()

    def rates(self, scan: str, source: str, payload, units: np.ndarray, frames: int, burn_in: int) -> np.ndarray:
        """Mean rate over frames ``burn_in``.. of ``units`` (readout indices) to videos of ``frames`` frames, through
        the ordinary inference path (berg_ray.inference.encode_videos): float64 (N, U).

        ``source`` "videos": ``payload`` is uint8 (N, F, 144, 256) (the stored MEIs); "validation": ``payload``
        lists ids of berg_ray.experiments.mei_validation.validation_ids, whose videos are generated here."""
        from berg_ray.experiments.mei_validation import validation_video
        from berg_ray.inference import encode_videos

        videos = (payload if source == "videos"
                  else np.stack([validation_video(i, frames, *self.validation) for i in payload]))
        out = encode_videos(self.model, videos, [scan] * len(videos), {scan: np.asarray(units, dtype=np.int64)})
        return np.stack([r[burn_in:].astype(np.float64).mean(axis=0) for r in out])


def _node_id() -> str:
    """This process's Ray node id (hex), or "" when it is not a Ray worker or driver."""
    import sys

    if "ray" not in sys.modules:
        return ""
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""


@contextlib.contextmanager
def mei_workers(worker_args: Mapping[str, Any], n_jobs: int, use_ray: bool, address: str | None = None,
                pool: Mapping[str, Any] | None = None, show_progress: bool = True
                ) -> Iterator[Callable[[Sequence[Job], Callable[[Job, Any], None]], None]]:
    """A runner for the block: ``run(jobs, on_result)`` runs every job and calls ``on_result(job, result)`` as each
    finishes (in completion order on Ray). The workers (and Ray) are started on the first call.

    Args:
        worker_args: MeiWorker's arguments but the device (berg_dir, s3_endpoint_url, scans, precision,
            validation).
        n_jobs: jobs expected in all (sizes the pool).
        use_ray: False: one MeiWorker in this process on ``pool["device"]`` (auto: CUDA when present); True: Ray.
        address, pool: the cluster to join and the pool options (berg_ray.cli.options.encoder_pool_args plus
            precision, verbose, batch_size and chunk_frames for the actors' memory), as for a sweep.
    """
    pool = dict(pool or {})
    started: list = []

    def run(jobs: Sequence[Job], on_result: Callable[[Job, Any], None]) -> None:
        if not jobs:
            return
        if not started:
            started.append(stack.enter_context(_workers(worker_args, n_jobs, use_ray, address, pool,
                                                        show_progress)))
        workers = started[0]
        if not use_ray:
            for job in jobs:
                on_result(job, getattr(workers, job.method)(*job.arguments()))
            return
        _dispatch(workers, jobs, on_result)

    with contextlib.ExitStack() as stack:
        yield run


@contextlib.contextmanager
def _workers(worker_args: Mapping[str, Any], n_jobs: int, use_ray: bool, address: str | None,
             pool: Mapping[str, Any], show_progress: bool) -> Iterator[Any]:
    if not use_ray:
        from berg_ray.runtime.device import resolve_device

        yield MeiWorker(device=str(resolve_device(pool.get("device", "auto"))), **worker_args)
        return
    with _actor_pool(worker_args, n_jobs, address, pool, show_progress) as actors:
        yield actors


@contextlib.contextmanager
def _actor_pool(worker_args: Mapping[str, Any], n_jobs: int, address: str | None, pool: Mapping[str, Any],
                show_progress: bool) -> Iterator[list]:
    """Ray (joined or local, for the block) and the planned MEI actors (plan_encoders: device, pool, GPU wait)."""
    import ray

    from berg_ray.runtime import threads
    from berg_ray.config import SweepArgs
    from berg_ray.cluster.local import ray_session
    from berg_ray.sweep.scaling import StatusLine, plan_encoders

    options = {"batch_size": 1, **{k: v for k, v in pool.items() if k in SweepArgs.model_fields}}
    args = SweepArgs(berg_dir=worker_args["berg_dir"], input=".", output=".", address=address,
                     show_progress=show_progress, **options)
    with ray_session(address, verbose=args.verbose):
        workers, device = plan_encoders(args, n_jobs, StatusLine(enabled=show_progress))
        remote = ray.remote(MeiWorker).options(**workers.actor_options(), runtime_env=threads.runtime_env())
        actors = [remote.remote(device=device, **worker_args) for _ in range(workers.count)]
        try:
            yield actors
        finally:
            for actor in actors:
                ray.kill(actor)


def _dispatch(actors: list, jobs: Sequence[Job], on_result: Callable[[Job, Any], None]) -> None:
    """Give each job to an actor that is up and idle; collect results as they finish."""
    import ray

    queue = list(reversed(jobs))
    starting = {actor.ready.remote(): actor for actor in actors}
    running: dict = {}
    while queue or running:
        done, _ = ray.wait([*starting, *running], num_returns=1)
        ref = done[0]
        if ref in starting:
            actor = starting.pop(ref)
            ray.get(ref)  # an actor that failed to start raises here
        else:
            actor, job = running.pop(ref)
            on_result(job, ray.get(ref))
        if queue:
            job = queue.pop()
            running[getattr(actor, job.method).remote(*job.arguments())] = (actor, job)
