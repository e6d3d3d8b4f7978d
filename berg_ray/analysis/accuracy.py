"""Prediction accuracy with a noise ceiling: CC_abs, CC_max and CC_norm of every unit (Schoppe et al. 2016).

The definitions and every variance normalisation follow the reference evaluation, cajal/fnn c34328c
``fnn/evaluate/__init__.py`` and ``demos/6 - evaluate_digital_twin.ipynb``, which produced the released
``cc_abs`` / ``cc_max`` / ``cc_norm`` of each scan's metadata. Per unit:

1. The first ``burn_in_frames`` frames of every video are dropped (the model's start-up transient), the videos are
   concatenated in time, and videos with fewer recorded trials than the most repeated one are padded with missing
   trials. This gives ``x`` [R, N]: R repeats (the most trials of any video) by N samples (kept frames of all
   videos). A NaN in a recording is a missing value too, as in the reference.
2. ``t_s`` = trials recorded at sample s; the effective number of repeats is the pooled
   ``n = sqrt((sum_s t_s - N) / sum_s (t_s - 1) / t_s**2)``.
3. ``y`` = mean over recorded trials at each sample; ``P = var(y, ddof=1)``; ``TP`` = mean over the R repeat rows
   of the variance over time of each row's recorded samples (ddof=1); signal power ``SP = (n P - TP) / (n - 1)``.
4. ``cc_max = sqrt(SP / var(y, ddof=0))``, NaN where SP <= 0 (no measurable signal).
5. ``cc_abs`` = Pearson r over the N samples of the prediction (its mean over trials, when each trial has its own
   prediction) and ``y``; NaN where either is constant.
6. ``cc_norm = cc_abs / cc_max``.

The mixed normalisations (ddof=1 in SP, ddof=0 below it) are the reference's: noise-free identical trials give
``cc_max = sqrt(N / (N - 1))``, slightly above 1. The reference stacks videos and so needs equal lengths; here each
video is reduced to running sums (Chan et al.'s pairwise update), so videos may differ in length and memory holds
one video at a time. With equal lengths the result is the reference's, up to float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from berg_ray.config import ACCURACY_BURN_IN_FRAMES
from berg_ray.errors import AnalysisInputError

ACCURACY_COLUMNS = ("cc_abs", "cc_max", "cc_norm")


def correlations(predictions: Sequence[Any], recordings: Sequence[Any],
                 burn_in_frames: int = ACCURACY_BURN_IN_FRAMES) -> pd.DataFrame:
    """CC_abs, CC_max and CC_norm of every unit over a set of videos (definitions: module docstring).

    Args:
        predictions: one array per video: [T_v, U] (one prediction of the video) or [R_v, T_v, U] (one per recorded
            trial, e.g. each trial predicted with its own behaviour; averaged over trials). Finite real numbers.
        recordings: one array per video, [R_v, T_v, U]: the recorded trials (R_v >= 1, may differ per video; NaN
            marks a missing value), units in the same order as the predictions. Videos may differ in length.
        burn_in_frames: frames dropped from the start of every video (default 10, the reference's); each video
            must be longer.

    Returns:
        DataFrame indexed by unit position 0..U-1 (index name ``unit``), float64 columns ``cc_abs``, ``cc_max``,
        ``cc_norm``.

    Raises:
        AnalysisInputError: different numbers of videos, units or frames between predictions and recordings, a
            burn-in not shorter than a video, no video with 2 or more trials (CC_max is then undefined), a sample
            with no recorded trial, NaN/inf in a prediction, inf in a recording, or a non-numeric array.
    """
    if isinstance(predictions, (str, bytes)) or isinstance(recordings, (str, bytes)):
        raise AnalysisInputError("predictions and recordings must be sequences of arrays, one per video")
    if len(predictions) != len(recordings):
        raise AnalysisInputError(f"{len(predictions)} predictions for {len(recordings)} recorded videos; give one "
                                 "prediction per video, in the same order")
    accumulator = CorrelationAccumulator(burn_in_frames)
    for prediction, recording in zip(predictions, recordings):
        accumulator.add(prediction, recording)
    return accumulator.table()


class CorrelationAccumulator:
    """:func:`correlations` one video at a time (memory: one video plus O(R x U) running sums).

    ``add(prediction, recording)`` for each video, then ``table()``; arguments and result as in
    :func:`correlations`.
    """

    def __init__(self, burn_in_frames: int = ACCURACY_BURN_IN_FRAMES) -> None:
        if isinstance(burn_in_frames, (bool, np.bool_)) or not isinstance(burn_in_frames, (int, np.integer)) \
                or burn_in_frames < 0:
            raise AnalysisInputError(f"burn_in_frames must be an integer >= 0, got {burn_in_frames!r}")
        self.burn_in_frames = int(burn_in_frames)
        self.n_videos = 0
        self.n_units: int | None = None
        self._pair: _PairMoments | None = None
        self._repeats: list[_Moments] = []  # one per repeat index (row of the padded trials)
        self._trials = np.zeros(0)  # (U,) sum over samples of t_s
        self._pooling = np.zeros(0)  # (U,) sum over samples of (t_s - 1) / t_s**2

    def add(self, prediction: Any, recording: Any) -> None:
        """Add one video: ``prediction`` [T, U] or [R, T, U], ``recording`` [R, T, U]."""
        video = self.n_videos
        recording = _recording_array(video, recording, self.n_units)
        mean_prediction = _prediction_mean(video, prediction, recording.shape)
        if recording.shape[1] <= self.burn_in_frames:
            raise AnalysisInputError(f"video {video} has {recording.shape[1]} frames, not more than burn_in_frames="
                                     f"{self.burn_in_frames}; lower burn_in_frames or drop the video")
        if self.n_units is None:
            self._start(recording.shape[2])
        kept = recording[:, self.burn_in_frames:]  # (R, T', U)
        present = ~np.isnan(kept)
        trials = present.sum(axis=0)  # (T', U) t_s
        if not trials.all():
            frame, unit = (int(i) for i in np.argwhere(trials == 0)[0])
            raise AnalysisInputError(f"recording of video {video} has no recorded value (all NaN) at frame "
                                     f"{frame + self.burn_in_frames}, unit {unit}; a sample needs at least one "
                                     "recorded trial (drop the frame from the video)")
        values = np.where(present, kept, 0.0)
        self._trials += trials.sum(axis=0)
        self._pooling += ((trials - 1) / trials**2).sum(axis=0)
        self._pair.add(mean_prediction[self.burn_in_frames:], values.sum(axis=0) / trials)
        while len(self._repeats) < kept.shape[0]:
            self._repeats.append(_Moments(self.n_units))
        for row, moments in zip(range(kept.shape[0]), self._repeats):
            moments.add(values[row], present[row])
        self.n_videos += 1

    def table(self) -> pd.DataFrame:
        """The per-unit table of the videos added so far."""
        if self.n_videos == 0:
            raise AnalysisInputError("no videos given; pass at least one prediction and recording")
        if len(self._repeats) < 2:
            raise AnalysisInputError("every video has a single recorded trial; cc_max (the noise ceiling) needs "
                                     "repeated trials of the same video: give at least one video with 2 or more "
                                     "trials")
        pair = self._pair
        if pair.count < 2:
            raise AnalysisInputError(f"only {pair.count} frame is left after the burn-in of {self.burn_in_frames} "
                                     "frames; correlations need at least 2 (longer videos or a shorter burn-in)")
        with np.errstate(divide="ignore", invalid="ignore"):
            power = pair.m2_y / (pair.count - 1)  # P: variance of the trial mean, ddof=1
            noise = np.mean([np.where(m.count >= 2, m.m2 / (m.count - 1), np.nan) for m in self._repeats], axis=0)
            repeats = np.sqrt((self._trials - pair.count) / self._pooling)  # n, pooled
            signal = (repeats * power - noise) / (repeats - 1)  # SP
            cc_max = np.where(signal > 0, np.sqrt(signal / (pair.m2_y / pair.count)), np.nan)
            cc_abs = np.where(pair.constant(), np.nan, pair.c_xy / np.sqrt(pair.m2_x * pair.m2_y))
            cc_norm = cc_abs / cc_max
        table = pd.DataFrame({"cc_abs": cc_abs, "cc_max": cc_max, "cc_norm": cc_norm}, dtype=np.float64)
        return table.rename_axis("unit")

    def _start(self, n_units: int) -> None:
        self.n_units = n_units
        self._pair = _PairMoments(n_units)
        self._trials, self._pooling = np.zeros(n_units), np.zeros(n_units)


class _Moments:
    """Per unit: count, mean and sum of squared deviations of the samples added so far (Chan et al. 1979)."""

    def __init__(self, n_units: int) -> None:
        self.count, self.mean, self.m2 = np.zeros(n_units), np.zeros(n_units), np.zeros(n_units)

    def add(self, values: np.ndarray, present: np.ndarray) -> None:
        """Add samples (T, U); ``present`` (T, U) marks the recorded ones (``values`` is 0 elsewhere)."""
        count = present.sum(axis=0)
        mean = values.sum(axis=0) / np.maximum(count, 1)
        m2 = (np.where(present, values - mean, 0.0) ** 2).sum(axis=0)
        total = self.count + count
        share = count / np.maximum(total, 1)
        delta = mean - self.mean
        self.mean = self.mean + delta * share
        self.m2 = self.m2 + m2 + delta**2 * self.count * share
        self.count = total


class _PairMoments:
    """Per unit: means, sums of squared deviations and co-deviation of x (prediction) and y (recorded mean), and
    their ranges (a constant series has no correlation; rounding would otherwise leave a tiny variance)."""

    def __init__(self, n_units: int) -> None:
        self.count = 0
        self.mean_x, self.mean_y = np.zeros(n_units), np.zeros(n_units)
        self.m2_x, self.m2_y, self.c_xy = np.zeros(n_units), np.zeros(n_units), np.zeros(n_units)
        self.range_x = [np.full(n_units, np.inf), np.full(n_units, -np.inf)]
        self.range_y = [np.full(n_units, np.inf), np.full(n_units, -np.inf)]

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        """Add samples x, y (T, U)."""
        count = x.shape[0]
        mean_x, mean_y = x.mean(axis=0), y.mean(axis=0)
        dev_x, dev_y = x - mean_x, y - mean_y
        total = self.count + count
        delta_x, delta_y = mean_x - self.mean_x, mean_y - self.mean_y
        weight = self.count * count / total
        self.m2_x = self.m2_x + (dev_x**2).sum(axis=0) + delta_x**2 * weight
        self.m2_y = self.m2_y + (dev_y**2).sum(axis=0) + delta_y**2 * weight
        self.c_xy = self.c_xy + (dev_x * dev_y).sum(axis=0) + delta_x * delta_y * weight
        self.mean_x = self.mean_x + delta_x * count / total
        self.mean_y = self.mean_y + delta_y * count / total
        self.count = total
        for bounds, values in ((self.range_x, x), (self.range_y, y)):
            bounds[0] = np.minimum(bounds[0], values.min(axis=0))
            bounds[1] = np.maximum(bounds[1], values.max(axis=0))

    def constant(self) -> np.ndarray:
        """(U,) bool: the prediction or the recorded mean takes one value only."""
        return (self.range_x[0] == self.range_x[1]) | (self.range_y[0] == self.range_y[1])


def _recording_array(video: int, recording: Any, n_units: int | None) -> np.ndarray:
    """float64 [R, T, U] of one video's recorded trials, checked (NaN allowed: a missing value)."""
    array = _real_array(f"recording of video {video}", recording)
    if array.ndim != 3 or 0 in array.shape:
        raise AnalysisInputError(f"recording of video {video} has shape {list(array.shape)}; expected [R, T, U] "
                                 "(recorded trials, frames, units), none of them empty")
    if n_units is not None and array.shape[2] != n_units:
        raise AnalysisInputError(f"recording of video {video} has {array.shape[2]} units, video 0 has {n_units}; "
                                 "every video must hold the same units in the same order")
    if np.isinf(array).any():
        raise AnalysisInputError(f"recording of video {video} contains infinite values; mark a missing value with "
                                 "NaN")
    return array


def _prediction_mean(video: int, prediction: Any, shape: tuple[int, int, int]) -> np.ndarray:
    """float64 [T, U]: the prediction of one video, averaged over trials when given per trial."""
    array = _real_array(f"prediction of video {video}", prediction)
    trials, frames, units = shape
    if array.shape not in ((frames, units), (trials, frames, units)):
        raise AnalysisInputError(f"prediction of video {video} has shape {list(array.shape)}; its recording is "
                                 f"[R, T, U] = {[trials, frames, units]}, so expected [T, U] = {[frames, units]} "
                                 f"or one per trial [R, T, U] = {[trials, frames, units]}")
    if not np.isfinite(array).all():
        raise AnalysisInputError(f"prediction of video {video} contains NaN or infinite values; predictions must "
                                 "be finite")
    return array if array.ndim == 2 else array.mean(axis=0)


def _real_array(what: str, value: Any) -> np.ndarray:
    if np.ma.isMaskedArray(value):
        raise AnalysisInputError(f"{what} is a masked array; fill it first (mark missing recorded values with NaN)")
    try:
        array = np.asarray(value)
    except Exception as exc:  # ragged nested lists and the like
        raise AnalysisInputError(f"{what} cannot be read as an array ({exc}); pass a numpy array") from None
    if array.dtype.kind not in "uif":
        raise AnalysisInputError(f"{what} has dtype {array.dtype}; pass real numbers")
    return array.astype(np.float64, copy=False)
