"""Trials (grey blank, stimulus, grey blank) and sequences of trials with their timing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from berg_ray.config import FRAME_HEIGHT, FRAME_RATE_HZ, FRAME_WIDTH, STIMULUS_MEAN_LUMINANCE, TRIAL_BLANK_FRAMES
from berg_ray.errors import StimulusParameterError
from berg_ray.stimuli.geometry import check_n_frames
from berg_ray.stimuli.images import blank


@dataclass(frozen=True)
class TrialTiming:
    """Where a stimulus lies in a video, in frames at 30 Hz.

    Attributes:
        onset: index of the stimulus's first frame in the video.
        stimulus_frames: number of stimulus frames.
        blank_before, blank_after: grey frames before and after the stimulus in this trial.
        start: index of the trial's first frame (onset - blank_before).
    """

    onset: int
    stimulus_frames: int
    blank_before: int
    blank_after: int

    @property
    def start(self) -> int:
        return self.onset - self.blank_before

    @property
    def offset(self) -> int:
        """Index one past the stimulus's last frame."""
        return self.onset + self.stimulus_frames

    @property
    def stop(self) -> int:
        """Index one past the trial's last frame."""
        return self.offset + self.blank_after

    @property
    def stimulus_slice(self) -> slice:
        return slice(self.onset, self.offset)

    @property
    def onset_s(self) -> float:
        return self.onset / FRAME_RATE_HZ

    @property
    def offset_s(self) -> float:
        return self.offset / FRAME_RATE_HZ


def trial(stimulus: np.ndarray, blank_before: int = TRIAL_BLANK_FRAMES, blank_after: int = TRIAL_BLANK_FRAMES,
          luminance: float = STIMULUS_MEAN_LUMINANCE) -> tuple[np.ndarray, TrialTiming]:
    """One trial: ``blank_before`` grey frames, the stimulus, ``blank_after`` grey frames.

    Args:
        stimulus: uint8 (T, 144, 256).
        blank_before, blank_after: grey frames (>= 0) at 30 Hz.
        luminance: pixel value of the blanks.

    Returns:
        (frames uint8 (blank_before + T + blank_after, 144, 256), timing).
    """
    frames, timings = trial_sequence([stimulus], blank_before, blank_after, luminance)
    return frames, timings[0]


def trial_sequence(stimuli: Sequence[np.ndarray], blank_before: int = TRIAL_BLANK_FRAMES,
                   blank_after: int = TRIAL_BLANK_FRAMES, luminance: float = STIMULUS_MEAN_LUMINANCE
                   ) -> tuple[np.ndarray, list[TrialTiming]]:
    """Trials back to back in one video: for each stimulus, blank, stimulus, blank.

    Returns:
        (frames uint8 (sum of trial lengths, 144, 256), one TrialTiming per stimulus, in order).
    """
    before = check_n_frames(blank_before, "blank_before", minimum=0)
    after = check_n_frames(blank_after, "blank_after", minimum=0)
    if len(stimuli) == 0:
        raise StimulusParameterError("trial_sequence needs at least one stimulus")
    parts, timings, cursor = [], [], 0
    for index, stimulus in enumerate(stimuli):
        array = np.asarray(stimulus)
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[1:] != (FRAME_HEIGHT, FRAME_WIDTH) \
                or array.shape[0] < 1:
            raise StimulusParameterError(f"stimulus {index} must be uint8 (T >= 1, {FRAME_HEIGHT}, {FRAME_WIDTH}) "
                                         f"(a berg_ray.stimuli generator's output), got {array.dtype} {array.shape}")
        parts += [blank(before, luminance), array, blank(after, luminance)]
        timings.append(TrialTiming(cursor + before, array.shape[0], before, after))
        cursor += before + array.shape[0] + after
    return np.concatenate(parts), timings
