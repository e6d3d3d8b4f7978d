"""The core deployment: each replica holds the shared core and the per-scan front ends, and batches videos.

Videos of different clients and scans are batched by the replica's :class:`~berg_ray.serve.scheduler.ChunkScheduler`
(one item per video): videos that arrive together form a cohort that runs in lock-step from frame 0, cut at
every video's end and every ``chunk_frames``; each segment runs once through ``EncodingModel.forward_features``
for the videos still running (with each video's own behaviour rows, zeros for a video without them), and a
finished video's rows are dropped from the carried state. No frame is padded or computed twice, so the result
equals a single pass (the model is causal). Cohorts take turns segment by segment, so a short request arriving
during a long one waits about one segment, not the long one's length. After each segment the features of each
video go to the readout head of its scan; a head call of segment k overlaps the core's work on segment k+1, and at
most two segments of features are in flight.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Sequence
from typing import Any

import numpy as np
import torch
from ray import serve
from ray.serve.handle import DeploymentHandle, DeploymentResponse

from berg_ray.behaviour import BEHAVIOUR_INPUTS
from berg_ray.checkpoint.release import load_model
from berg_ray.config import BatchingConfig, CoreArgs
from berg_ray.download import resolve_berg_dir
from berg_ray.storage.s3 import s3_options_for
from berg_ray.errors import ScanNotAvailableError
from berg_ray.cluster.metrics import RECORDER, record_encoded
from berg_ray.model.network import EncodingModel
from berg_ray.serve.scheduler import (ChunkScheduler, Forward, Send, VideoJob, behaviour_rows,  # noqa: F401
                                      plan_segments, run_batch, take_rows)
from berg_ray.runtime.threads import set_torch_threads


class HeadRouter:
    """Sends features to the readout head of a scan: one multiplexed deployment, or one deployment per scan."""

    def __init__(self, heads: DeploymentHandle | dict[str, DeploymentHandle]) -> None:
        self._heads = heads

    def handle(self, scan_id: str) -> DeploymentHandle:
        head = self._heads[scan_id] if isinstance(self._heads, dict) else self._heads
        return head.options(multiplexed_model_id=scan_id)

    def readout(self, scan_id: str, features: np.ndarray, units: np.ndarray | None) -> DeploymentResponse:
        return self.handle(scan_id).remote(features, units)

    def ready(self, scan_id: str) -> DeploymentResponse:
        return self.handle(scan_id).ready.remote()


class CoreServer:
    """The shared core + per-scan front ends of the loaded scans; every replica one copy, on its own GPU if any."""

    def __init__(self, berg_dir: str, scan_ids: list[str], device: str, core: CoreArgs,
                 heads: DeploymentHandle | dict[str, DeploymentHandle] | None,
                 s3_endpoint_url: str | None = None) -> None:
        """``heads`` None: the readout runs here, on the core's device, and only responses leave it (in_core).
        ``s3_endpoint_url``: the endpoint of an s3:// ``berg_dir`` (None: this node's environment, else AWS)."""
        set_torch_threads(core.torch_threads)  # None: the CPUs Ray reserved for this replica
        release = resolve_berg_dir(berg_dir, s3_options_for(berg_dir, s3_endpoint_url))
        self._model: EncodingModel = load_model(release, scan_ids, device=device, precision=core.precision,
                                             kernels=core.kernels)
        self._heads = None if heads is None else HeadRouter(heads)
        self._feature_dtype = getattr(np, core.feature_dtype)
        self._precision = core.precision  # the precision tag of berg_ray_videos_encoded / _frames_encoded
        self._batch_videos: Counter[int] = Counter()  # videos per cohort -> number of cohorts, for stats()
        self._ongoing = 0  # encode requests in progress on this replica, for stats()
        self._scheduler = ChunkScheduler(self._cohort_runner, self._admitted, self._queue_changed)
        self.reconfigure(BatchingConfig().model_dump())

    @property
    def _chunk_frames(self) -> int:
        return self._scheduler.chunk_frames

    @_chunk_frames.setter
    def _chunk_frames(self, value: int) -> None:
        self._scheduler.chunk_frames = value

    def reconfigure(self, batching: dict) -> None:
        """Apply a BatchingConfig (``user_config``): batch size, wait, chunk length, cohorts and interleaving
        change without restart (cohorts already running keep their segments)."""
        config = BatchingConfig.model_validate(batching)
        self._scheduler.configure(config.max_batch_size, config.batch_wait_timeout_s, config.chunk_frames,
                                  config.max_cohorts, config.interleave)

    async def encode(self, videos: np.ndarray, scan_id: str, units: np.ndarray | None,
                     perspectives: np.ndarray | None = None, modulations: np.ndarray | None = None) -> np.ndarray:
        """Responses float32 (B, T, U') of validated uint8 videos (B, T, 144, 256) of one loaded scan, with their
        validated behaviour inputs float32 (B, T, 2) or None (each video keeps its own rows through batching)."""
        if scan_id not in self._model.scan_ids:
            raise ScanNotAvailableError(f"scan {scan_id} is not loaded; loaded: {self._model.scan_ids}")
        self._count_ongoing(1)
        try:
            per_video = await asyncio.gather(*(self._scheduler.submit(VideoJob(
                v, scan_id, units, None if perspectives is None else perspectives[b],
                None if modulations is None else modulations[b])) for b, v in enumerate(videos)))
            outputs = []
            for parts in per_video:
                outputs.append(np.concatenate([await p if isinstance(p, Awaitable) else p for p in parts]))
        finally:
            self._count_ongoing(-1)
        record_encoded(scan_id, self._precision, videos.shape[0], videos.shape[0] * videos.shape[1])
        return np.stack(outputs)  # (B, T, U')

    def _admitted(self, jobs: list[VideoJob]) -> None:
        self._batch_videos[len(jobs)] += 1
        RECORDER.observe("berg_ray_core_batch_videos", len(jobs))

    def _queue_changed(self, queued: int) -> None:
        RECORDER.set("berg_ray_core_queued_videos", queued)

    def _count_ongoing(self, step: int) -> None:
        self._ongoing += step
        RECORDER.set("berg_ray_core_ongoing_requests", self._ongoing)

    def _cohort_runner(self, jobs: list[VideoJob]) -> tuple[Forward, Send]:
        """(forward, send) of a cohort: features to the heads, or (in_core) the responses _forward computed."""
        if self._heads is None:
            def send(job: VideoJob, responses: np.ndarray) -> np.ndarray:
                return responses
        else:
            def send(job: VideoJob, features: np.ndarray) -> DeploymentResponse:
                return self._heads.readout(job.scan_id, features, job.units)
        return (lambda *a: asyncio.to_thread(self._forward, jobs, *a)), send

    async def _run(self, jobs: list[VideoJob]) -> list[list[Any]]:
        """One cohort run to its end outside the scheduler (per job its per-segment results)."""
        return await run_batch(jobs, self._chunk_frames, *self._cohort_runner(jobs))

    def _forward(self, jobs: Sequence[VideoJob], active: list[int], start: int, stop: int, state: Any
                 ) -> tuple[np.ndarray, Any]:
        """Features (B_active, t, F, h, w) for the heads, or with the readout in core the responses of each active
        video (a list of (t, U') arrays), computed on the device so that only responses are copied to the host."""
        frames = np.stack([jobs[i].frames[start:stop] for i in active])  # (B_active, t, 144, 256)
        behaviour = {name: behaviour_rows(jobs, active, start, stop, name) for name in BEHAVIOUR_INPUTS}
        with torch.inference_mode():
            chunk = torch.from_numpy(frames).to(self._model.device)
            given = {name: None if rows is None else torch.from_numpy(rows).to(self._model.device)  # (B_active, t, 2)
                     for name, rows in behaviour.items()}  # None: no video of the cohort has it (the default path)
            features, state = self._model.forward_features(chunk, [jobs[i].scan_id for i in active], state,
                                                           perspectives=given["perspectives"],
                                                           modulations=given["modulations"])
            if self._heads is None:
                return [self._readout(features[row:row + 1], jobs[i]) for row, i in enumerate(active)], state
            return features.cpu().numpy().astype(self._feature_dtype, copy=False), state

    def _readout(self, features: torch.Tensor, job: VideoJob) -> np.ndarray:
        units = None if job.units is None else torch.as_tensor(job.units, dtype=torch.long, device=features.device)
        return self._model.forward_readout(features, job.scan_id, units)[0].cpu().numpy()  # (t, U')

    async def ready(self) -> list[str]:
        """The loaded scans, once every scan's readout head has answered."""
        if self._heads is not None:
            await asyncio.gather(*(self._heads.ready(sid) for sid in self._model.scan_ids))
        return self._model.scan_ids

    def stats(self) -> dict[str, Any]:
        """This replica's id, its encode requests in progress and its batching statistics: number of core batches,
        videos per batch (histogram, max, mean)."""
        batches = sum(self._batch_videos.values())
        videos = sum(size * count for size, count in self._batch_videos.items())
        return {"replica": serve.get_replica_context().replica_id.unique_id, "ongoing_requests": self._ongoing,
                "batches": batches, "max_batch_videos": max(self._batch_videos, default=0),
                "mean_batch_videos": videos / max(batches, 1),
                "batch_videos_histogram": dict(sorted(self._batch_videos.items()))}
