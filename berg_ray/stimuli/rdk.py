"""Random dot kinematograms: a fraction ``coherence`` of the dots moves in one direction, the rest at random."""

from __future__ import annotations

import numpy as np

from berg_ray.config import (FRAME_HEIGHT, FRAME_RATE_HZ, FRAME_WIDTH, RDK_DENSITY_PER_DEG2, RDK_DOT_DIAMETER_DEG,
                             RDK_SPEED_DEG_S, STIMULUS_MEAN_LUMINANCE)
from berg_ray.errors import StimulusParameterError
from berg_ray.stimuli.dots import POLARITIES
from berg_ray.stimuli.geometry import check_n_frames, check_range, pixels_per_degree, unit_vector


def random_dot_kinematogram(direction_deg: float, n_frames: int, seed: int = 0, coherence: float = 1.0,
                            density_per_deg2: float = RDK_DENSITY_PER_DEG2,
                            dot_diameter_deg: float = RDK_DOT_DIAMETER_DEG, speed_deg_s: float = RDK_SPEED_DEG_S,
                            polarity: str = "on", mean_luminance: float = STIMULUS_MEAN_LUMINANCE) -> np.ndarray:
    """Disk-shaped dots on a grey background; on every frame each dot steps ``speed`` along the signal direction
    with probability ``coherence`` and along a uniformly random direction otherwise (so every dot moves at the same
    speed and the net motion is the signal direction). Dots wrap around the screen edges.

    Args:
        direction_deg: signal direction (0 = rightward, 90 = upward, see :mod:`berg_ray.stimuli.geometry`).
        n_frames: frames T at 30 Hz.
        seed: seed of the dot positions and noise directions; the same seed gives the same frames.
        coherence: fraction in [0, 1] of dots moving in the signal direction on each frame.
        density_per_deg2: dots per square degree of visual angle (screen area 211 x 119 deg at 1.214 px/deg).
        dot_diameter_deg: dot diameter in degrees.
        speed_deg_s: dot speed in degrees per second.
        polarity: "on" (white dots, 255) or "off" (black dots, 0).
        mean_luminance: background pixel value.

    Returns:
        uint8 (T, 144, 256).
    """
    n_frames = check_n_frames(n_frames)
    direction = np.radians(check_range(direction_deg, "direction_deg", -360.0, 720.0, " deg"))
    coherence = check_range(coherence, "coherence", 0.0, 1.0)
    ppd = pixels_per_degree()
    area_deg2 = FRAME_WIDTH * FRAME_HEIGHT / ppd**2
    density = check_range(density_per_deg2, "density_per_deg2", 1.0 / area_deg2, 1.0, " dots/deg^2")
    radius = check_range(dot_diameter_deg, "dot_diameter_deg", 0.5, 40.0, " deg") * ppd / 2
    step = check_range(speed_deg_s, "speed_deg_s", 0.0, 1000.0, " deg/s") * ppd / FRAME_RATE_HZ
    if polarity not in POLARITIES:
        raise StimulusParameterError(f"polarity must be one of {list(POLARITIES)}, got {polarity!r}")
    mean = check_range(mean_luminance, "mean_luminance", 0.0, 255.0, " (pixel value)")
    rng = np.random.default_rng(seed)
    n_dots = max(1, round(density * area_deg2))
    col = rng.uniform(0, FRAME_WIDTH, n_dots)
    row = rng.uniform(0, FRAME_HEIGHT, n_dots)
    signal_x, signal_y = unit_vector(np.degrees(direction))
    offsets_row, offsets_col = _disk_offsets(radius)
    frames = np.full((n_frames, FRAME_HEIGHT, FRAME_WIDTH), np.uint8(round(mean)), dtype=np.uint8)
    value = np.uint8(255 if polarity == "on" else 0)
    for t in range(n_frames):
        rows = (np.floor(row)[:, None].astype(np.int64) + offsets_row[None]) % FRAME_HEIGHT
        cols = (np.floor(col)[:, None].astype(np.int64) + offsets_col[None]) % FRAME_WIDTH
        frames[t, rows, cols] = value
        coherent = rng.uniform(size=n_dots) < coherence
        noise_angle = rng.uniform(0, 2 * np.pi, n_dots)
        move_x = np.where(coherent, signal_x, np.cos(noise_angle))
        move_y = np.where(coherent, signal_y, np.sin(noise_angle))
        col = (col + step * move_x) % FRAME_WIDTH
        row = (row - step * move_y) % FRAME_HEIGHT  # y up = towards row 0
    return frames


def _disk_offsets(radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Integer (row, col) offsets of the pixels within ``radius`` of a pixel centre (at least the centre)."""
    reach = int(np.ceil(radius))
    d_row, d_col = np.mgrid[-reach:reach + 1, -reach:reach + 1]
    inside = d_row**2 + d_col**2 <= max(radius, 0.5) ** 2
    return d_row[inside], d_col[inside]
