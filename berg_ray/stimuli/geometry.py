"""Screen geometry and pixel helpers shared by the stimulus generators.

Units used by every generator of :mod:`berg_ray.stimuli`:

* Frames are uint8 ``[T, 144, 256]`` at 30 Hz (``config.FRAME_RATE_HZ``); the pixel value is the luminance.
* Positions are monitor pixels ``(col, row)``: ``(0, 0)`` is the centre of the top-left pixel, so the screen centre
  is ``(127.5, 71.5)``. This is the frame the receptive-field analysis reports centres in.
* Sizes, spatial frequencies and speeds are in degrees of visual angle, converted with one linear factor,
  :func:`pixels_per_degree`, taken at the screen centre for the MICrONS monitor (55.2 x 31.0 cm at 15 cm,
  ``config.MONITOR_*``): 1.214 px/deg. A flat monitor this close spans 123 deg; far from the centre a degree covers
  more pixels than the factor says, which the generators ignore (no spherical correction).
* Directions: 0 deg = motion to the right (+x, increasing column), 90 deg = motion up (towards row 0),
  counter-clockwise on the screen. Gratings' bars are orthogonal to their direction.
"""

from __future__ import annotations

import math

import numpy as np

from berg_ray.config import (FRAME_HEIGHT, FRAME_RATE_HZ, FRAME_WIDTH, MONITOR_DISTANCE_CM, MONITOR_WIDTH_CM)
from berg_ray.errors import StimulusParameterError

SCREEN_CENTRE_PX = ((FRAME_WIDTH - 1) / 2, (FRAME_HEIGHT - 1) / 2)  # (col, row)


def pixels_per_degree() -> float:
    """Monitor pixels per degree of visual angle at the screen centre (1.214 for the MICrONS monitor)."""
    cm_per_degree = MONITOR_DISTANCE_CM * math.tan(math.radians(1.0))
    return cm_per_degree * FRAME_WIDTH / MONITOR_WIDTH_CM


def degrees_to_pixels(degrees: float) -> float:
    """A size in degrees of visual angle -> pixels (linear, at the screen centre)."""
    return float(degrees) * pixels_per_degree()


def screen_xy() -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates relative to the screen centre, x to the right and y upwards.

    Returns:
        (x, y): float64 arrays (144, 256) in pixels; y = centre row - row.
    """
    rows, cols = np.mgrid[0:FRAME_HEIGHT, 0:FRAME_WIDTH].astype(np.float64)
    return cols - SCREEN_CENTRE_PX[0], SCREEN_CENTRE_PX[1] - rows


def unit_vector(direction_deg: float) -> tuple[float, float]:
    """(x, y) components (y up) of a direction in degrees."""
    angle = math.radians(direction_deg)
    return math.cos(angle), math.sin(angle)


def frame_times(n_frames: int) -> np.ndarray:
    """Times (T,) in seconds of the frames at 30 Hz, starting at 0."""
    return np.arange(n_frames, dtype=np.float64) / FRAME_RATE_HZ


def to_frames(values: np.ndarray) -> np.ndarray:
    """Luminance values (any float array) -> uint8 pixels, rounded and clipped to [0, 255]."""
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def check_n_frames(n_frames: int, name: str = "n_frames", minimum: int = 1) -> int:
    """Return a count (frames, grid size) as int if it is an integer >= ``minimum``; else raise
    StimulusParameterError."""
    if isinstance(n_frames, bool) or not isinstance(n_frames, (int, np.integer)) or n_frames < minimum:
        raise StimulusParameterError(f"{name} must be an integer >= {minimum}, got {n_frames!r}")
    return int(n_frames)


def check_range(value: float, name: str, low: float, high: float, unit: str = "") -> float:
    """Return ``value`` as float if it is finite and in [low, high]; else raise StimulusParameterError."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and low <= number <= high):
        raise StimulusParameterError(f"{name} must be a number in [{low}, {high}]{unit}, got {value!r}")
    return number


def check_luminance(mean_luminance: float, contrast: float) -> tuple[float, float]:
    """Validate a mean luminance (pixel value) and Michelson contrast so that mean * (1 +- contrast) fits [0, 255].

    Returns:
        (mean_luminance, contrast) as floats.
    """
    mean = check_range(mean_luminance, "mean_luminance", 0.0, 255.0, " (pixel value)")
    contrast = check_range(contrast, "contrast", 0.0, 1.0, " (Michelson)")
    if mean * (1 + contrast) > 255.0 + 1e-9:
        raise StimulusParameterError(
            f"mean_luminance {mean} with contrast {contrast} exceeds 255 (peak {mean * (1 + contrast):.1f}); lower "
            f"the contrast to <= {255.0 / mean - 1:.3f} or the mean luminance to <= {255.0 / (1 + contrast):.1f}")
    return mean, contrast


def check_position(position_px: tuple[float, float], name: str = "position_px") -> tuple[float, float]:
    """Validate a ``(col, row)`` monitor-pixel position on the screen; return it as floats."""
    try:
        col, row = (float(v) for v in position_px)
    except (TypeError, ValueError):
        raise StimulusParameterError(f"{name} must be (col, row) in monitor pixels, got {position_px!r}") from None
    check_range(col, f"{name} col", -0.5, FRAME_WIDTH - 0.5, " pixels")
    check_range(row, f"{name} row", -0.5, FRAME_HEIGHT - 0.5, " pixels")
    return col, row
