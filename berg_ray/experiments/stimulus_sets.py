"""The stimulus sets of the in-silico experiments: named uint8 videos, each a grey burn-in then the stimulus.

Every video starts with ``burn_in`` grey frames (the model's start-up transient; the sweep drops them with
``skip_frames``), so the mean response of a video is its mean response to the stimulus alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from berg_ray.config import (DOT_SIGMA_DEG, EXPERIMENT_BURN_IN_FRAMES, EXPERIMENT_DIRECTIONS, EXPERIMENT_REPEATS,
                             EXPERIMENT_RF_DOT_FRAMES, EXPERIMENT_RF_GRID, EXPERIMENT_TRIAL_FRAMES)
from berg_ray.stimuli import blank, dot_grid, drifting_grating, flashing_dot, trial
from berg_ray.stimuli.geometry import check_n_frames

BLANK_ID = "blank"


@dataclass(frozen=True)
class StimulusSet:
    """Named videos of one experiment.

    Attributes:
        videos: stimulus id -> uint8 (T, 144, 256); ids sort in the order the analysis expects.
        burn_in: leading grey frames of every video (drop them before averaging).
        conditions: stimulus id -> its parameters (direction, repeat, position, polarity).
        parameters: the arguments that made the set (JSON-serialisable); an output directory holds one set only.
    """

    videos: dict[str, np.ndarray]
    burn_in: int
    conditions: dict[str, dict]
    parameters: dict

    @property
    def n_frames(self) -> int:
        return sum(video.shape[0] for video in self.videos.values())


def tuning_set(n_directions: int = EXPERIMENT_DIRECTIONS, repeats: int = EXPERIMENT_REPEATS,
               trial_frames: int = EXPERIMENT_TRIAL_FRAMES, burn_in: int = EXPERIMENT_BURN_IN_FRAMES,
               **grating_options) -> StimulusSet:
    """Full-field drifting gratings at ``n_directions`` directions k * 360 / n, ``repeats`` spatial phases each.

    Ids are ``dir-{k:03d}_rep-{r:02d}``; ``grating_options`` go to :func:`berg_ray.stimuli.drifting_grating`.
    """
    n_directions, repeats, trial_frames = check_tuning(n_directions, repeats, trial_frames)
    videos, conditions = {}, {}
    for k in range(n_directions):
        direction = k * 360.0 / n_directions
        for r in range(repeats):
            grating = drifting_grating(direction, trial_frames, phase_deg=r * 360.0 / repeats, **grating_options)
            stimulus_id = f"dir-{k:03d}_rep-{r:02d}"
            videos[stimulus_id] = trial(grating, blank_before=burn_in, blank_after=0)[0]
            conditions[stimulus_id] = {"direction_deg": direction, "repeat": r}
    parameters = {"set": "tuning", "n_directions": n_directions, "repeats": repeats, "trial_frames": trial_frames,
                  "burn_in": burn_in, **grating_options}
    return StimulusSet(videos, burn_in, conditions, parameters)


def check_tuning(n_directions: int, repeats: int, trial_frames: int) -> tuple[int, int, int]:
    """The counts of :func:`tuning_set`, checked (StimulusParameterError) without generating anything."""
    return (check_n_frames(n_directions, "directions", minimum=4), check_n_frames(repeats, "repeats"),
            check_n_frames(trial_frames, "trial_frames"))


def rf_set(grid: tuple[int, int] = EXPERIMENT_RF_GRID, dot_frames: int = EXPERIMENT_RF_DOT_FRAMES,
           burn_in: int = EXPERIMENT_BURN_IN_FRAMES, sigma_deg: float = DOT_SIGMA_DEG,
           margin_px: float = 8.0) -> StimulusSet:
    """ON and OFF Gaussian dots at every position of a ``dot_grid``, plus a grey blank (the baseline).

    Ids are ``dot-{k:04d}_{on|off}`` (k: row-major grid index) and ``blank``.
    """
    positions = dot_grid(grid[0], grid[1], margin_px)
    videos = {BLANK_ID: blank(burn_in + dot_frames)}
    conditions: dict[str, dict] = {BLANK_ID: {}}
    for k, position in enumerate(positions):
        for polarity in ("on", "off"):
            dot = flashing_dot(tuple(position), dot_frames, sigma_deg=sigma_deg, polarity=polarity)
            stimulus_id = f"dot-{k:04d}_{polarity}"
            videos[stimulus_id] = trial(dot, blank_before=burn_in, blank_after=0)[0]
            conditions[stimulus_id] = {"index": k, "col": position[0], "row": position[1], "polarity": polarity}
    parameters = {"set": "rf", "grid": list(grid), "dot_frames": dot_frames, "burn_in": burn_in,
                  "sigma_deg": sigma_deg, "margin_px": margin_px}
    return StimulusSet(videos, burn_in, conditions, parameters)


DOMAINS = ("blank", "grating", "gabor", "dots", "noise", "rdk", "image")


def domains_set(n_frames: int, burn_in: int = EXPERIMENT_BURN_IN_FRAMES, image: np.ndarray | str | None = None,
                seed: int = 0) -> StimulusSet:
    """One stimulus of each domain, id = domain name (see ``DOMAINS``), all drifting rightward where they move.

    Args:
        n_frames: stimulus frames per domain (after the burn-in).
        burn_in: grey frames before each stimulus.
        image: the "image" domain's picture (a file path or array, see ``static_image``); None: a static isotropic
            pink-noise image (1/f amplitude spectrum, like natural images), generated from ``seed``.
        seed: seed of the noise, dot kinematogram and default image.
    """
    from berg_ray.stimuli import directional_pink_noise, drifting_gabor, random_dot_kinematogram, static_image
    from berg_ray.stimuli.geometry import SCREEN_CENTRE_PX

    n_frames = check_n_frames(n_frames)
    if image is None:
        still = directional_pink_noise(0.0, 1, seed=seed, speed_deg_s=0.0, orientation_bandwidth_deg=1000.0)
        picture = np.repeat(still, n_frames, axis=0)
    else:
        picture = static_image(image, n_frames)
    stimuli = {
        "blank": blank(n_frames),
        "grating": drifting_grating(0.0, n_frames),
        "gabor": drifting_gabor(0.0, n_frames, position_px=SCREEN_CENTRE_PX),
        "dots": flashing_dot(SCREEN_CENTRE_PX, n_frames),
        "noise": directional_pink_noise(0.0, n_frames, seed=seed),
        "rdk": random_dot_kinematogram(0.0, n_frames, seed=seed),
        "image": picture,
    }
    videos = {name: trial(stimuli[name], blank_before=burn_in, blank_after=0)[0] for name in DOMAINS}
    parameters = {"set": "domains", "n_frames": n_frames, "burn_in": burn_in, "seed": seed,
                  "image": None if image is None else (str(image) if not isinstance(image, np.ndarray) else "array")}
    return StimulusSet(videos, burn_in, {name: {"domain": name} for name in DOMAINS}, parameters)
