"""Chunk-granular scheduling of a core replica's videos: a short request never waits for a long one to finish.

Videos that arrive together (within ``batch_wait_timeout_s`` of an idle replica, or between two segments of a
busy one; at most ``max_batch_size``) form a **cohort**: one lock-step batch with its own carried state, cut into
segments at every video's end and every ``chunk_frames`` frames (:func:`plan_segments`), so no frame is padded or
computed twice and each video's result equals a single pass (the model is causal). Up to ``max_cohorts`` cohorts
are in flight and the scheduler runs one segment of each in turn: a video arriving while a long one runs starts
at the next segment boundary, and waits about one segment (at most ``chunk_frames`` frames) per running cohort
instead of the long video's whole length. A cohort never mixes frame positions, which the model's state needs
(one modulation position and temporal-pair alignment per batch).

``interleave=False`` keeps the former lock-step behaviour (a new batch starts only when the running one has
ended): the throughput-only choice, and the baseline of ``benchmarks/bench_fairness.py``.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

Forward = Callable[[list[int], int, int, Any], Awaitable[tuple[Any, Any]]]
Send = Callable[["VideoJob", Any], Any]


@dataclass(frozen=True)
class VideoJob:
    """One video of a request: the core's batching unit.

    Attributes:
        frames: uint8 (T, 144, 256).
        scan_id: canonical scan id whose front end and readout apply.
        units: int64 readout indices to return, or None for all units.
        perspectives: float32 (T, 2) pupil centre per frame (standardised), or None (the model's default, 0).
        modulations: float32 (T, 2) pupil radius and treadmill speed per frame (standardised), or None.
    """

    frames: np.ndarray
    scan_id: str
    units: np.ndarray | None
    perspectives: np.ndarray | None = None
    modulations: np.ndarray | None = None


def behaviour_rows(jobs: Sequence[VideoJob], active: Sequence[int], start: int, stop: int, name: str
                   ) -> np.ndarray | None:
    """One behaviour input of a cohort's segment: float32 (len(active), stop - start, 2), row r from video
    ``jobs[active[r]]`` (frames [start, stop)), zeros for a video without it (the model's default path).

    Built from the active videos of each segment, so the rows follow the carried state when the cohort shrinks
    (:func:`take_rows`). None when no video of the cohort has the input, so such cohorts run the default path.
    """
    if all(getattr(job, name) is None for job in jobs):
        return None
    rows = np.zeros((len(active), stop - start, 2), np.float32)
    for row, i in enumerate(active):
        value = getattr(jobs[i], name)
        if value is not None:
            rows[row] = value[start:stop]
    return rows


def plan_segments(lengths: Sequence[int], chunk_frames: int) -> list[tuple[int, int]]:
    """Cut [0, max(lengths)) at every video end and every ``chunk_frames`` frames; returns (start, stop) pairs."""
    cuts = sorted(set(lengths) | set(range(chunk_frames, max(lengths), chunk_frames)) | {0})
    return list(zip(cuts[:-1], cuts[1:]))


def take_rows(state: Any, rows: torch.Tensor) -> Any:
    """Keep batch rows ``rows`` of every tensor in a (nested) state; ints and other scalars pass through."""
    if isinstance(state, torch.Tensor):
        return state.index_select(0, rows.to(state.device))
    if isinstance(state, (list, tuple)):
        return type(state)(take_rows(item, rows) for item in state)
    if dataclasses.is_dataclass(state):
        return dataclasses.replace(state, **{f.name: take_rows(getattr(state, f.name), rows)
                                             for f in dataclasses.fields(state)})
    return state


class Cohort:
    """A lock-step batch of videos run segment by segment (:meth:`step`), its state carried between segments.

    ``forward(active job indices, start, stop, state) -> (features or responses per active row, state)``;
    ``send(job, row) -> result or awaitable``: awaitables of segment k are awaited after segment k+1 has been
    computed (bounded features in flight). ``parts``: per job, its per-segment results in time order.
    """

    def __init__(self, jobs: Sequence[VideoJob], chunk_frames: int, forward: Forward, send: Send) -> None:
        self.jobs = list(jobs)
        self.parts: list[list[Any]] = [[] for _ in self.jobs]
        self._segments = collections.deque(plan_segments([len(j.frames) for j in self.jobs], chunk_frames))
        self._forward, self._send = forward, send
        self._active = list(range(len(self.jobs)))
        self._state: Any = None
        self._previous: list[tuple[int, int]] = []

    @property
    def done(self) -> bool:
        return not self._segments

    async def step(self) -> None:
        """Run the next segment of the videos still running; drop the rows of videos that end with it."""
        start, stop = self._segments.popleft()
        features, self._state = await self._forward(self._active, start, stop, self._state)
        current = [(i, len(self.parts[i])) for i in self._active]
        for row, (i, _) in enumerate(current):
            self.parts[i].append(self._send(self.jobs[i], features[row]))
        await _resolve(self.parts, self._previous)
        self._previous = current
        keep = [row for row, i in enumerate(self._active) if len(self.jobs[i].frames) > stop]
        if len(keep) < len(self._active):
            self._active = [self._active[row] for row in keep]
            self._state = take_rows(self._state, torch.tensor(keep)) if keep else None

    async def finish(self) -> list[list[Any]]:
        """Await the last segment's results; returns ``parts``."""
        await _resolve(self.parts, self._previous)
        self._previous = []
        return self.parts


async def run_batch(jobs: Sequence[VideoJob], chunk_frames: int, forward: Forward, send: Send) -> list[list[Any]]:
    """Run one cohort to its end (see :class:`Cohort`); returns per job its per-segment results in time order."""
    cohort = Cohort(jobs, chunk_frames, forward, send)
    while not cohort.done:
        await cohort.step()
    return await cohort.finish()


async def _resolve(parts: list[list[Any]], where: list[tuple[int, int]]) -> None:
    for i, k in where:
        if isinstance(parts[i][k], Awaitable):
            parts[i][k] = await parts[i][k]


@dataclass
class _Running:
    cohort: Cohort
    futures: list[asyncio.Future]


class ChunkScheduler:
    """The replica's queue of videos and its cohorts in flight, run by one asyncio task (module docstring).

    Args:
        runner: ``jobs -> (forward, send)`` of a new cohort (the replica's model and heads).
        on_admit: called with each new cohort's jobs (statistics, metrics).
        on_queue: called with the number of videos waiting whenever it changes (a metrics gauge).
    """

    def __init__(self, runner: Callable[[list[VideoJob]], tuple[Forward, Send]],
                 on_admit: Callable[[list[VideoJob]], None] | None = None,
                 on_queue: Callable[[int], None] | None = None) -> None:
        self._runner, self._on_admit, self._on_queue = runner, on_admit, on_queue
        self.max_batch_size, self.batch_wait_timeout_s, self.chunk_frames = 8, 0.02, 32
        self.max_cohorts, self.interleave = 4, True
        self._pending: collections.deque[tuple[VideoJob, asyncio.Future]] = collections.deque()
        self._running: list[_Running] = []
        self._turn = 0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    def configure(self, max_batch_size: int, batch_wait_timeout_s: float, chunk_frames: int, max_cohorts: int,
                  interleave: bool) -> None:
        """New settings; cohorts already running keep their segments."""
        self.max_batch_size, self.batch_wait_timeout_s, self.chunk_frames = (max_batch_size, batch_wait_timeout_s,
                                                                           chunk_frames)
        self.max_cohorts, self.interleave = max_cohorts, interleave

    @property
    def queued(self) -> int:
        """Videos waiting for a cohort."""
        return len(self._pending)

    async def submit(self, job: VideoJob) -> list[Any]:
        """Schedule one video; returns its per-segment results in time order (as :func:`run_batch`)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((job, future))
        self._queue_changed()
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._loop())
        self._wake.set()
        return await future

    async def _loop(self) -> None:
        while self._pending or self._running:
            if self._pending and not self._running:
                await self._wait_for_batch()
            self._admit()
            if not self._running:
                continue
            self._turn %= len(self._running)
            running = self._running[self._turn]
            try:
                await running.cohort.step()
                finished = running.cohort.done
                if finished:
                    parts = await running.cohort.finish()
            except Exception as exc:  # noqa: BLE001 - the cohort's requests get the error, the others go on
                self._running.remove(running)
                _fail(running.futures, exc)
                continue
            if finished:
                self._running.remove(running)
                for future, job_parts in zip(running.futures, parts):
                    if not future.done():
                        future.set_result(job_parts)
            else:
                self._turn += 1

    async def _wait_for_batch(self) -> None:
        """An idle replica waits up to ``batch_wait_timeout_s`` for a full batch (as ``@serve.batch`` does)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.batch_wait_timeout_s
        while len(self._pending) < self.max_batch_size and loop.time() < deadline:
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), deadline - loop.time())
            except asyncio.TimeoutError:
                break

    def _admit(self) -> None:
        """New cohorts from the queue, at most ``max_batch_size`` videos each, while cohorts may be added."""
        while self._pending and len(self._running) < (self.max_cohorts if self.interleave else 1):
            taken = [self._pending.popleft() for _ in range(min(self.max_batch_size, len(self._pending)))]
            self._queue_changed()
            taken = [(job, future) for job, future in taken if not future.cancelled()]  # clients gone: skipped
            if not taken:
                continue
            jobs = [job for job, _ in taken]
            if self._on_admit is not None:
                self._on_admit(jobs)
            forward, send = self._runner(jobs)
            self._running.append(_Running(Cohort(jobs, self.chunk_frames, forward, send),
                                          [future for _, future in taken]))


    def _queue_changed(self) -> None:
        if self._on_queue is not None:
            self._on_queue(len(self._pending))


def _fail(futures: list[asyncio.Future], exc: BaseException) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(exc)
