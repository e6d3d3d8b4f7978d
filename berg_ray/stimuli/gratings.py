"""Drifting sinusoidal gratings, full-field or in a Gaussian window (Gabor patches).

Units and the direction convention are those of :mod:`berg_ray.stimuli.geometry`: direction 0 deg drifts to the
right (+x, increasing column), 90 deg drifts up (towards row 0); the bars are orthogonal to the direction.
"""

from __future__ import annotations

import math

import numpy as np

from berg_ray.config import (FRAME_RATE_HZ, GRATING_SPATIAL_FREQUENCY_CPD, GRATING_TEMPORAL_FREQUENCY_HZ,
                             STIMULUS_CONTRAST, STIMULUS_MEAN_LUMINANCE)
from berg_ray.stimuli.geometry import (SCREEN_CENTRE_PX, check_luminance, check_n_frames, check_position,
                                       check_range, degrees_to_pixels, frame_times, pixels_per_degree, screen_xy,
                                       to_frames, unit_vector)


def grating_modulation(direction_deg: float, n_frames: int, spatial_frequency_cpd: float,
                       temporal_frequency_hz: float, phase_deg: float = 0.0) -> np.ndarray:
    """The drifting sinusoid sin(2 pi (f_s * (p . d) - f_t * t) + phase), float64 (T, 144, 256) in [-1, 1].

    ``p`` is the pixel position (x right, y up, pixels), ``d`` the unit direction and ``f_s`` in cycles per pixel:
    a crest moves along ``d`` at f_t / f_s pixels per second.
    """
    n_frames = check_n_frames(n_frames)
    direction = check_range(direction_deg, "direction_deg", -360.0, 720.0, " deg")
    cycles_per_px = check_range(spatial_frequency_cpd, "spatial_frequency_cpd", 1e-4, 0.5 * pixels_per_degree(),
                                " cycles/deg (above 0.61 it aliases on 256 x 144 pixels)") / pixels_per_degree()
    temporal = check_range(temporal_frequency_hz, "temporal_frequency_hz", 0.0, FRAME_RATE_HZ / 2, " Hz")
    phase = math.radians(check_range(phase_deg, "phase_deg", -360.0, 360.0, " deg"))
    x, y = screen_xy()
    dx, dy = unit_vector(direction)
    spatial = 2 * np.pi * cycles_per_px * (x * dx + y * dy)
    times = frame_times(n_frames)[:, None, None]
    return np.sin(spatial[None] - 2 * np.pi * temporal * times + phase)


def drifting_grating(direction_deg: float, n_frames: int,
                     spatial_frequency_cpd: float = GRATING_SPATIAL_FREQUENCY_CPD,
                     temporal_frequency_hz: float = GRATING_TEMPORAL_FREQUENCY_HZ,
                     contrast: float = STIMULUS_CONTRAST, mean_luminance: float = STIMULUS_MEAN_LUMINANCE,
                     phase_deg: float = 0.0) -> np.ndarray:
    """Full-field drifting sinusoidal grating.

    Args:
        direction_deg: drift direction in degrees; 0 = rightward (+x, increasing column), 90 = upward (towards
            row 0), counter-clockwise. The bars are orthogonal to it (0 deg: vertical bars).
        n_frames: number of frames T at 30 Hz.
        spatial_frequency_cpd: cycles per degree of visual angle (1.214 px/deg at the screen centre).
        temporal_frequency_hz: cycles per second passing a point (speed = temporal / spatial frequency, deg/s).
        contrast: Michelson contrast in [0, 1]: pixels span mean * (1 +- contrast).
        mean_luminance: mean pixel value in [0, 255].
        phase_deg: spatial phase at the screen centre at t = 0.

    Returns:
        uint8 (T, 144, 256).
    """
    mean, contrast = check_luminance(mean_luminance, contrast)
    wave = grating_modulation(direction_deg, n_frames, spatial_frequency_cpd, temporal_frequency_hz, phase_deg)
    return to_frames(mean * (1 + contrast * wave))


def gaussian_window(position_px: tuple[float, float], sigma_deg: float) -> np.ndarray:
    """Gaussian window (144, 256) in [0, 1] with peak 1 at ``position_px`` (col, row) and sd ``sigma_deg``."""
    col, row = check_position(position_px)
    sigma = degrees_to_pixels(check_range(sigma_deg, "sigma_deg", 0.1, 200.0, " deg"))
    x, y = screen_xy()
    cx, cy = col - SCREEN_CENTRE_PX[0], SCREEN_CENTRE_PX[1] - row
    return np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma**2))


def drifting_gabor(direction_deg: float, n_frames: int, position_px: tuple[float, float] = SCREEN_CENTRE_PX,
                   sigma_deg: float = 10.0, spatial_frequency_cpd: float = GRATING_SPATIAL_FREQUENCY_CPD,
                   temporal_frequency_hz: float = GRATING_TEMPORAL_FREQUENCY_HZ,
                   contrast: float = STIMULUS_CONTRAST, mean_luminance: float = STIMULUS_MEAN_LUMINANCE,
                   phase_deg: float = 0.0) -> np.ndarray:
    """A drifting grating seen through a Gaussian window on a grey background (a drifting Gabor patch).

    Args:
        direction_deg, n_frames, spatial_frequency_cpd, temporal_frequency_hz, contrast, mean_luminance, phase_deg:
            as :func:`drifting_grating` (contrast is the peak contrast at the window's centre).
        position_px: window centre (col, row) in monitor pixels.
        sigma_deg: window standard deviation in degrees of visual angle.

    Returns:
        uint8 (T, 144, 256); far from the window the pixels are ``mean_luminance``.
    """
    mean, contrast = check_luminance(mean_luminance, contrast)
    window = gaussian_window(position_px, sigma_deg)
    wave = grating_modulation(direction_deg, n_frames, spatial_frequency_cpd, temporal_frequency_hz, phase_deg)
    return to_frames(mean * (1 + contrast * window[None] * wave))
