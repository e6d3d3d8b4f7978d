"""Directional pink noise: a 1/f noise image filtered around one orientation and translated along a direction.

The noise is periodic over the screen (it is built in the Fourier domain and shifted with the shift theorem, so
each frame is the first one moved by speed x t with wrap-around), which keeps every frame's statistics equal.
"""

from __future__ import annotations

import numpy as np

from berg_ray.config import (FRAME_HEIGHT, FRAME_RATE_HZ, FRAME_WIDTH, NOISE_ORIENTATION_BANDWIDTH_DEG,
                             NOISE_RMS_CONTRAST, NOISE_SPEED_DEG_S, STIMULUS_MEAN_LUMINANCE)
from berg_ray.stimuli.geometry import check_n_frames, check_range, pixels_per_degree, to_frames, unit_vector


def directional_pink_noise(direction_deg: float, n_frames: int, seed: int = 0,
                           speed_deg_s: float = NOISE_SPEED_DEG_S,
                           orientation_bandwidth_deg: float = NOISE_ORIENTATION_BANDWIDTH_DEG,
                           rms_contrast: float = NOISE_RMS_CONTRAST,
                           mean_luminance: float = STIMULUS_MEAN_LUMINANCE) -> np.ndarray:
    """Pink (1/f amplitude) noise whose components are oriented orthogonally to ``direction_deg`` and drift along it.

    Args:
        direction_deg: drift direction (0 = rightward, 90 = upward, see :mod:`berg_ray.stimuli.geometry`); the
            noise's wave vectors are concentrated around this direction, so its elongated structures lie
            orthogonal to it, like a grating's bars.
        n_frames: frames T at 30 Hz.
        seed: seed of the noise image; the same seed gives the same frames.
        speed_deg_s: drift speed in degrees of visual angle per second.
        orientation_bandwidth_deg: standard deviation, in degrees, of the Gaussian orientation filter applied to
            the wave vectors (large values give isotropic noise).
        rms_contrast: standard deviation of the pixels divided by the mean luminance, before clipping to [0, 255].
        mean_luminance: mean pixel value.

    Returns:
        uint8 (T, 144, 256).
    """
    n_frames = check_n_frames(n_frames)
    direction = check_range(direction_deg, "direction_deg", -360.0, 720.0, " deg")
    speed_px = check_range(speed_deg_s, "speed_deg_s", 0.0, 1000.0, " deg/s") * pixels_per_degree() / FRAME_RATE_HZ
    bandwidth = np.radians(check_range(orientation_bandwidth_deg, "orientation_bandwidth_deg", 1.0, 1000.0, " deg"))
    contrast = check_range(rms_contrast, "rms_contrast", 0.0, 1.0)
    mean = check_range(mean_luminance, "mean_luminance", 0.0, 255.0, " (pixel value)")
    k_row = np.fft.fftfreq(FRAME_HEIGHT)[:, None]  # cycles per pixel along rows (downwards)
    k_col = np.fft.fftfreq(FRAME_WIDTH)[None, :]
    k_x, k_y = k_col, -k_row  # y upwards
    radius = np.hypot(k_x, k_y)
    amplitude = np.divide(1.0, radius, out=np.zeros_like(radius), where=radius > 0)
    angle_off = (np.arctan2(k_y, k_x) - np.radians(direction) + np.pi / 2) % np.pi - np.pi / 2  # axial difference
    spectrum = np.fft.fft2(np.random.default_rng(seed).standard_normal((FRAME_HEIGHT, FRAME_WIDTH)))
    spectrum *= amplitude * np.exp(-(angle_off**2) / (2 * bandwidth**2))
    dx, dy = unit_vector(direction)
    shift_col, shift_row = speed_px * dx, -speed_px * dy  # pixels per frame
    steps = np.arange(n_frames, dtype=np.float64)[:, None, None]
    phase = np.exp(-2j * np.pi * (k_col * shift_col + k_row * shift_row)[None] * steps)
    images = np.fft.ifft2(spectrum[None] * phase).real
    scale = images[0].std()
    scale = contrast * mean / scale if scale > 0 else 0.0
    return to_frames(mean + scale * images)
