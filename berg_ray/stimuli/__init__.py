"""Seeded stimulus generators for in-silico experiments: uint8 [T, 144, 256] videos at 30 Hz.

Units and conventions (screen geometry, positions in monitor pixels, sizes in degrees, directions with 0 deg =
rightward and 90 deg = upward) are documented in :mod:`berg_ray.stimuli.geometry`.
"""

from berg_ray.stimuli.dots import dot_grid, flashing_dot
from berg_ray.stimuli.geometry import degrees_to_pixels, pixels_per_degree
from berg_ray.stimuli.gratings import drifting_gabor, drifting_grating
from berg_ray.stimuli.images import blank, static_image
from berg_ray.stimuli.noise import directional_pink_noise
from berg_ray.stimuli.rdk import random_dot_kinematogram
from berg_ray.stimuli.trials import TrialTiming, trial, trial_sequence

__all__ = ["TrialTiming", "blank", "degrees_to_pixels", "directional_pink_noise", "dot_grid", "drifting_gabor",
           "drifting_grating", "flashing_dot", "pixels_per_degree", "random_dot_kinematogram", "static_image",
           "trial", "trial_sequence"]
