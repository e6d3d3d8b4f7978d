"""MeiSettings: every hyper-parameter of an MEI run, checked once (defaults in berg_ray/config/mei.py)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from berg_ray.config import (MEI_BLUR_CUTOFF, MEI_BURN_IN_FRAMES, MEI_CLIP, MEI_CLIP_EPS, MEI_FRAMES, MEI_INIT_GAIN,
                             MEI_LR, MEI_PENALTY, MEI_SEED, MEI_SPATIAL_STD_PX, MEI_STEPS, MEI_TEMPORAL_STD_FRAMES)
from berg_ray.errors import InvalidArgumentError

MAX_FRAMES = 3000  # 100 s at 30 Hz: far beyond any MEI; bounds memory and cost of a typo
MAX_STEPS = 1_000_000


@dataclass(frozen=True)
class MeiSettings:
    """One MEI run's settings (the run's output records them; a re-run must use the same ones).

    Attributes:
        frames: frames F of every MEI video (30 Hz), burn-in included.
        burn_in: leading frames left out of the objective.
        steps: gradient steps.
        static: one image held for all frames (True) or a video whose frames differ (False).
        lr, clip, eps: SGD with adaptive clipping (berg_ray.mei.optimizer) under a cosine schedule.
        penalty: weight of the blur penalty (berg_ray.mei.penalty) against the mean log-rate.
        spatial_std, temporal_std, cutoff: the penalty's Gaussian blur (pixels, frames, standard deviations);
            the temporal blur applies to dynamic MEIs only.
        init_gain: starting gain of the unit-RMS image (berg_ray.mei.stimulus).
        seed: seed of the starting images (one per unit, derived from it, the scan and the readout index).
        chunk_frames: frames per recomputed chunk of the backward pass (None: the gradient path's default); memory
            grows with it, results do not depend on it.
    """

    frames: int = MEI_FRAMES
    burn_in: int = MEI_BURN_IN_FRAMES
    steps: int = MEI_STEPS
    static: bool = True
    lr: float = MEI_LR
    clip: float = MEI_CLIP
    eps: float = MEI_CLIP_EPS
    penalty: float = MEI_PENALTY
    spatial_std: float = MEI_SPATIAL_STD_PX
    temporal_std: float = MEI_TEMPORAL_STD_FRAMES
    cutoff: float = MEI_BLUR_CUTOFF
    init_gain: float = MEI_INIT_GAIN
    seed: int = MEI_SEED
    chunk_frames: int | None = None

    def __post_init__(self) -> None:
        check_settings(self)

    @property
    def kind(self) -> str:
        return "static" if self.static else "dynamic"

    def record(self) -> dict:
        """The settings that decide an MEI's bytes (JSON-serialisable; chunk_frames is left out: it does not)."""
        return {k: v for k, v in asdict(self).items() if k != "chunk_frames"}


def check_settings(s: MeiSettings) -> None:
    """InvalidArgumentError naming the CLI flag of the first bad value."""
    _integer(s.frames, "--frames", 1, MAX_FRAMES)
    _integer(s.burn_in, "--burn-in-frames", 0, MAX_FRAMES)
    if s.burn_in >= s.frames:
        raise InvalidArgumentError(f"--frames {s.frames} must be more than --burn-in-frames {s.burn_in}: the "
                                   "objective averages the frames after the burn-in")
    _integer(s.steps, "--steps", 1, MAX_STEPS)
    _integer(s.seed, "--seed", 0, 2**32 - 1)
    if s.chunk_frames is not None:
        _integer(s.chunk_frames, "chunk_frames", 1, MAX_FRAMES)
    for name, value in (("--lr", s.lr), ("--clip", s.clip), ("clip eps", s.eps), ("--init-gain", s.init_gain)):
        _number(value, name, positive=True)
    for name, value in (("--penalty", s.penalty), ("--spatial-std", s.spatial_std),
                        ("--temporal-std", s.temporal_std), ("blur cutoff", s.cutoff)):
        _number(value, name, positive=False)


def _integer(value: object, name: str, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidArgumentError(f"{name} {value!r} must be an integer from {low} to {high}")


def _number(value: object, name: str, positive: bool) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        raise InvalidArgumentError(f"{name} {value!r} must be a finite number {'above' if positive else 'of at least'}"
                                   " 0")
