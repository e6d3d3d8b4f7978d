"""Where ``berg-ray evaluate`` predicts: in this process, or spread over Ray actors on a cluster.

Both yield, video by video in file order, the recorded video and its prediction (see
:func:`berg_ray.experiments.evaluate.predict_trials`). On Ray, the driver reads each recording (local files, as
for a local run) and sends only the stimulus and behaviour to ``workers`` predictor actors, each holding the
model on its own CPU or GPU; at most two videos per actor are in flight, so the driver's memory stays bounded
whatever the number of recordings.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator, Sequence

import numpy as np

from berg_ray.experiments.recordings import RecordedVideo, RecordingHeader, read_recording

IN_FLIGHT_PER_WORKER = 2


def predict_locally(args, headers: Sequence[RecordingHeader], n_units: int
                    ) -> Iterator[tuple[RecordedVideo, np.ndarray]]:
    """Predict in this process on ``args.device`` (``args``: an EvaluationArgs)."""
    from berg_ray.experiments.evaluate import load_handle, predict_trials

    model = load_handle(args, args.device)
    for header in headers:
        video = read_recording(header.path, n_units)
        yield video, predict_trials(model, video.stimulus, video.behaviour, video.responses.shape[0])


class _Predictor:
    """Ray actor: the model of one scan, predicting the trials of one video per call."""

    def __init__(self, args, device: str) -> None:
        from berg_ray.experiments.evaluate import load_handle
        from berg_ray.runtime.threads import set_torch_threads

        set_torch_threads()
        self.model = load_handle(args, device)

    def predict(self, stimulus: np.ndarray, behaviour: dict, trials: int) -> np.ndarray:
        from berg_ray.experiments.evaluate import predict_trials

        return predict_trials(self.model, stimulus, behaviour, trials)


def predict_on_ray(args, headers: Sequence[RecordingHeader], n_units: int, workers: int, address: str | None,
                   gpus_per_worker: float = 1.0, verbose: bool = False) -> Iterator[tuple[RecordedVideo, np.ndarray]]:
    """Predict on ``workers`` Ray actors, joining ``address`` (None: RAY_ADDRESS, else a local cluster; a Ray already
    initialised in this process is used as it is). ``args.device`` decides as for a sweep
    (berg_ray.cluster.accelerators.choose_device): cpu, cuda (``gpus_per_worker`` GPUs per actor) or auto (GPUs when the
    cluster has them or its autoscaler can start them)."""
    import ray
    from ray.util import ActorPool

    from berg_ray.cluster.accelerators import choose_device, cluster_capacity
    from berg_ray.cluster.local import ray_session

    with ray_session(address, verbose=verbose):
        on_gpu = choose_device(args.device, cluster_capacity("GPU")).on_accelerator
        device = "cuda" if on_gpu else "cpu"
        actor = ray.remote(num_cpus=1, num_gpus=gpus_per_worker if on_gpu else 0)(_Predictor)
        pool = ActorPool([actor.remote(args, device) for _ in range(workers)])
        pending: collections.deque[RecordedVideo] = collections.deque()
        for header in headers:
            video = read_recording(header.path, n_units)
            pool.submit(lambda a, v: a.predict.remote(v.stimulus, v.behaviour, v.responses.shape[0]), video)
            pending.append(video)
            if len(pending) >= IN_FLIGHT_PER_WORKER * workers:
                yield pending.popleft(), pool.get_next()  # in submission order
        while pending:
            yield pending.popleft(), pool.get_next()
