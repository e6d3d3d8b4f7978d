"""The core's chunk scheduler (berg_ray.serve.scheduler) with a stand-in model: cohorts take turns segment by
segment, a short video waits about one segment behind a long one, results equal one lock-step pass, a failing
cohort fails only its own requests, behaviour rows follow their videos. The real model goes through the same path in
tests/serve/test_fairness.py."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch

from berg_ray.serve.scheduler import ChunkScheduler, VideoJob, behaviour_rows, run_batch


class StandIn:
    """forward: per active row, (frame index + 1000 x the row's carried count) for each frame; the state carries
    each row's count of frames seen, so a wrong carry or row drop changes the numbers. Logs every segment."""

    def __init__(self, delay_s: float = 0.0, fail_on: str | None = None) -> None:
        self.log: list[tuple[str, int, int]] = []
        self.delay_s, self.fail_on = delay_s, fail_on

    def runner(self, jobs: list[VideoJob]):
        async def forward(active, start, stop, state):
            names = [jobs[i].scan_id for i in active]
            self.log.append(("+".join(names), start, stop))
            if self.fail_on in names:
                raise RuntimeError(f"segment of {self.fail_on} failed")
            await asyncio.sleep(self.delay_s)
            seen = torch.zeros(len(active)) if state is None else state
            rows = [np.arange(start, stop) + 1000 * float(seen[row]) for row in range(len(active))]
            return rows, seen + (stop - start)

        def send(job, row):
            return row
        return forward, send


def job(name: str, frames: int) -> VideoJob:
    return VideoJob(np.zeros((frames, 1, 1), np.uint8), name, None)


def expected(frames: int, chunk: int, cuts: list[int]) -> np.ndarray:
    """What the stand-in returns for a video of ``frames`` frames alone in a cohort cut at ``cuts``."""
    out, seen, start = [], 0, 0
    for stop in cuts:
        out.append(np.arange(start, stop) + 1000 * seen)
        seen += stop - start
        start = stop
    return np.concatenate(out)


def scheduler(model: StandIn, chunk: int = 4, batch: int = 8, cohorts: int = 4, interleave: bool = True,
              wait_s: float = 0.0) -> ChunkScheduler:
    sched = ChunkScheduler(model.runner)
    sched.configure(batch, wait_s, chunk, cohorts, interleave)
    return sched


def test_a_short_video_waits_about_one_segment_behind_a_long_one():
    model = StandIn(delay_s=0.01)

    async def scenario():
        sched = scheduler(model)
        long = asyncio.create_task(sched.submit(job("long", 40)))
        await asyncio.sleep(0.035)  # the long video is a few segments in
        short = await sched.submit(job("short", 3))
        segments_when_short_done = [entry[0] for entry in model.log].count("long")
        return await long, short, segments_when_short_done

    long, short, long_segments = asyncio.run(scenario())
    assert np.array_equal(np.concatenate(long), expected(40, 4, list(range(4, 41, 4))))
    assert np.array_equal(np.concatenate(short), expected(3, 4, [3]))
    assert long_segments < 10  # the short one finished long before the long one (10 segments)
    names = [entry[0] for entry in model.log]
    first_short = names.index("short")
    assert names[first_short - 1] == "long" and "long" in names[first_short + 1:]  # interleaved, not after


def test_lock_step_mode_makes_the_short_video_wait_for_the_long_one():
    model = StandIn(delay_s=0.005)

    async def scenario():
        sched = scheduler(model, interleave=False)
        long = asyncio.create_task(sched.submit(job("long", 40)))
        await asyncio.sleep(0.02)
        await sched.submit(job("short", 3))
        await long

    asyncio.run(scenario())
    assert [entry[0] for entry in model.log] == ["long"] * 10 + ["short"]


def test_videos_arriving_together_form_one_cohort_and_equal_a_single_pass():
    model = StandIn()
    lengths = [9, 4, 13]

    async def scenario():
        sched = scheduler(model, chunk=4, wait_s=0.05)
        return await asyncio.gather(*(sched.submit(job(f"v{i}", n)) for i, n in enumerate(lengths)))

    results = asyncio.run(scenario())
    assert model.log[0] == ("v0+v1+v2", 0, 4)  # one cohort: all three in the first segment
    lone = StandIn()
    direct = asyncio.run(run_batch([job(f"v{i}", n) for i, n in enumerate(lengths)], 4, *lone.runner(
        [job(f"v{i}", n) for i, n in enumerate(lengths)])))
    for got, want in zip(results, direct):
        assert np.array_equal(np.concatenate(got), np.concatenate(want))
    assert model.log == lone.log


def test_a_failing_cohort_fails_only_its_own_requests_and_the_scheduler_goes_on():
    model = StandIn(delay_s=0.005, fail_on="bad")

    async def scenario():
        sched = scheduler(model, batch=1)
        good = asyncio.create_task(sched.submit(job("good", 12)))
        await asyncio.sleep(0.001)
        with pytest.raises(RuntimeError, match="segment of bad failed"):
            await sched.submit(job("bad", 8))
        after = await sched.submit(job("after", 2))
        return await good, after

    good, after = asyncio.run(scenario())
    assert np.array_equal(np.concatenate(good), expected(12, 4, [4, 8, 12]))
    assert np.array_equal(np.concatenate(after), expected(2, 4, [2]))


def test_cohorts_in_flight_are_bounded():
    model = StandIn(delay_s=0.002)

    async def scenario():
        sched = scheduler(model, batch=1, cohorts=2)
        await asyncio.gather(*(sched.submit(job(f"v{i}", 8)) for i in range(4)))

    asyncio.run(scenario())
    in_flight, peak = set(), 0
    for name, start, stop in model.log:
        in_flight.add(name)
        peak = max(peak, len(in_flight))
        if stop == 8:
            in_flight.discard(name)
    assert peak == 2


class BehaviourStandIn:
    """forward: per active row and frame, the running sum of the row's ``modulations`` (column 0 + 10 x column 1)
    over all its frames so far; the state (B,) carries the sums, so a behaviour row that did not follow its video
    when the cohort shrinks (take_rows) changes the numbers. Logs whether each segment got the input."""

    def __init__(self) -> None:
        self.given: list[tuple[bool, bool]] = []

    def runner(self, jobs: list[VideoJob]):
        async def forward(active, start, stop, state):
            rows = behaviour_rows(jobs, active, start, stop, "modulations")
            self.given.append((rows is not None, behaviour_rows(jobs, active, start, stop, "perspectives")
                               is not None))
            steps = torch.from_numpy(rows[..., 0] + 10 * rows[..., 1]).double()  # (B_active, t)
            sums = (torch.zeros(len(active), dtype=torch.double) if state is None else state)[:, None] + steps.cumsum(1)
            return sums.numpy(), sums[:, -1]

        def send(job, row):
            return row
        return forward, send


def test_behaviour_rows_follow_their_videos_when_the_cohort_shrinks():
    rng = np.random.default_rng(0)
    lengths, with_input = [4, 11, 7, 9], [True, False, True, True]
    jobs = [VideoJob(np.zeros((n, 1, 1), np.uint8), f"v{i}", None,
                     modulations=rng.integers(-5, 5, (n, 2)).astype(np.float32) if given else None)
            for i, (n, given) in enumerate(zip(lengths, with_input))]
    model = BehaviourStandIn()
    parts = asyncio.run(run_batch(jobs, 4, *model.runner(jobs)))  # segments 0-4, 4-7, 7-8, 8-9, 9-11
    for job, job_parts in zip(jobs, parts):
        alone = np.zeros(len(job.frames)) if job.modulations is None else np.cumsum(
            job.modulations[:, 0] + 10.0 * job.modulations[:, 1])
        assert np.array_equal(np.concatenate(job_parts), alone), job.scan_id
    assert model.given == [(True, False)] * 5  # the cohort's input every segment (zeros for v1), never perspectives


def test_behaviour_rows_of_a_segment():
    frames, values = np.zeros((3, 1, 1), np.uint8), np.arange(6, dtype=np.float32).reshape(3, 2)
    jobs = [VideoJob(frames, "a", None, perspectives=values), VideoJob(frames, "b", None)]
    rows = behaviour_rows(jobs, [1, 0], 1, 3, "perspectives")
    assert rows.dtype == np.float32 and rows.tolist() == [[[0, 0], [0, 0]], [[2, 3], [4, 5]]]
    assert behaviour_rows(jobs, [0, 1], 0, 3, "modulations") is None  # no video has it: the default path
