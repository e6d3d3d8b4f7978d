"""Flashing Gaussian dots and the position grids used to map receptive fields with them."""

from __future__ import annotations

import numpy as np

from berg_ray.config import DOT_SIGMA_DEG, FRAME_HEIGHT, FRAME_WIDTH, STIMULUS_MEAN_LUMINANCE
from berg_ray.errors import StimulusParameterError
from berg_ray.stimuli.geometry import check_n_frames, check_range, to_frames
from berg_ray.stimuli.gratings import gaussian_window

POLARITIES = ("on", "off")


def flashing_dot(position_px: tuple[float, float], n_frames: int, sigma_deg: float = DOT_SIGMA_DEG,
                 polarity: str = "on", mean_luminance: float = STIMULUS_MEAN_LUMINANCE) -> np.ndarray:
    """A Gaussian dot shown for ``n_frames`` frames on a grey background (wrap it with :func:`trial` for blanks).

    Args:
        position_px: dot centre (col, row) in monitor pixels.
        n_frames: duration of the flash in frames at 30 Hz.
        sigma_deg: standard deviation of the Gaussian in degrees of visual angle.
        polarity: "on" (peak 255, brighter than the background) or "off" (peak 0, darker).
        mean_luminance: background pixel value in [0, 255].

    Returns:
        uint8 (T, 144, 256), the same frame T times.
    """
    n_frames = check_n_frames(n_frames)
    mean = check_range(mean_luminance, "mean_luminance", 0.0, 255.0, " (pixel value)")
    if polarity not in POLARITIES:
        raise StimulusParameterError(f"polarity must be one of {list(POLARITIES)}, got {polarity!r}")
    peak = 255.0 if polarity == "on" else 0.0
    frame = to_frames(mean + (peak - mean) * gaussian_window(position_px, sigma_deg))
    return np.repeat(frame[None], n_frames, axis=0)


def dot_grid(n_rows: int, n_cols: int, margin_px: float = 8.0) -> np.ndarray:
    """Centres of a regular grid of dot positions covering the monitor, row-major.

    Args:
        n_rows, n_cols: grid size (>= 1 each).
        margin_px: distance of the outermost centres from the screen edges, in pixels.

    Returns:
        float64 (n_rows * n_cols, 2) positions (col, row) in monitor pixels; index k = i * n_cols + j.
    """
    n_rows, n_cols = check_n_frames(n_rows, "n_rows"), check_n_frames(n_cols, "n_cols")
    margin = check_range(margin_px, "margin_px", 0.0, (FRAME_HEIGHT - 1) / 2, " pixels")
    rows = _centres(n_rows, FRAME_HEIGHT, margin)
    cols = _centres(n_cols, FRAME_WIDTH, margin)
    grid_rows, grid_cols = np.meshgrid(rows, cols, indexing="ij")
    return np.stack([grid_cols.ravel(), grid_rows.ravel()], axis=1)


def _centres(n: int, size: int, margin: float) -> np.ndarray:
    if n == 1:
        return np.array([(size - 1) / 2])
    return np.linspace(margin, size - 1 - margin, n)
