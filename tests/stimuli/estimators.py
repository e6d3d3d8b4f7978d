"""Independent estimators of a video's defining properties, used by the generator tests.

All angles use the stimuli convention: degrees, x to the right, y up (towards row 0).
"""

from __future__ import annotations

import numpy as np


def _spectrum(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windowed 2-D FFT of a frame and the wave vector (k_x, k_y up) of every bin, cycles per pixel."""
    values = frame.astype(np.float64)
    window = np.outer(np.hanning(values.shape[0]), np.hanning(values.shape[1]))
    spectrum = np.fft.fft2((values - values.mean()) * window)
    k_row = np.fft.fftfreq(values.shape[0])[:, None] * np.ones((1, values.shape[1]))
    k_col = np.fft.fftfreq(values.shape[1])[None, :] * np.ones((values.shape[0], 1))
    return spectrum, k_col, -k_row


def wavevector_axis_deg(frame: np.ndarray) -> float:
    """Axis (deg in [0, 180)) of the frame's wave vectors: power-weighted circular mean of the doubled angles."""
    spectrum, k_x, k_y = _spectrum(frame)
    power = np.abs(spectrum) ** 2
    doubled = np.sum(power * np.exp(2j * np.arctan2(k_y, k_x)))
    return float(np.degrees(np.angle(doubled) / 2) % 180)


def drift_direction_deg(frames: np.ndarray) -> float:
    """Direction of motion of a drifting periodic pattern: the axis from :func:`wavevector_axis_deg`, the sense from
    the phase change of the strongest Fourier component k between consecutive frames (a pattern shifted by s
    multiplies component k by exp(-2 pi i k.s))."""
    spectrum0, k_x, k_y = _spectrum(frames[0])
    peak = np.unravel_index(np.argmax(np.abs(spectrum0)), spectrum0.shape)
    components = [_spectrum(frame)[0][peak] for frame in frames]
    ratios = [after * np.conj(before) for before, after in zip(components[:-1], components[1:])]
    k_dot_s = -np.angle(np.sum(ratios)) / (2 * np.pi)
    axis = wavevector_axis_deg(frames[0])
    peak_along_axis = np.cos(np.arctan2(k_y[peak], k_x[peak]) - np.radians(axis)) > 0
    return float((axis if (k_dot_s > 0) == peak_along_axis else axis + 180) % 360)


def mean_displacement(frames: np.ndarray) -> tuple[float, float]:
    """Mean frame-to-frame displacement (dx right, dy up) in pixels from the peaks of circular cross-correlations."""
    shifts = []
    for t in range(len(frames) - 1):
        a = frames[t].astype(np.float64) - frames[t].mean()
        b = frames[t + 1].astype(np.float64) - frames[t + 1].mean()
        correlation = np.fft.ifft2(np.conj(np.fft.fft2(a)) * np.fft.fft2(b)).real
        row, col = np.unravel_index(np.argmax(correlation), correlation.shape)
        height, width = correlation.shape
        shifts.append((col if col <= width // 2 else col - width, row if row <= height // 2 else row - height))
    d_col, d_row = np.mean(shifts, axis=0)
    return float(d_col), float(-d_row)


def direction_of(dx: float, dy: float) -> float:
    return float(np.degrees(np.arctan2(dy, dx)) % 360)


def angle_error(a: float, b: float, period: float = 360.0) -> float:
    """Absolute circular difference of two angles in degrees."""
    return abs((a - b + period / 2) % period - period / 2)
