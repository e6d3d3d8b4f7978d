"""Where each unit's readout position lies on the monitor, and how well it agrees with measured RF centres.

A unit reads the core's 16 x 24 feature grid at ``tanh(mu)`` in [-1, 1]^2 (x = width, y = height,
``align_corners=False``; model/readout.py). The core maps the 128 x 192 retina image onto that grid with a stride
2 stem (replicate padding 2, 6 x 6 kernel) and two 2 x 2 average pools, which keep normalised coordinates: feature
position p and retina position p are the same point. The scan's perspective sampling grid (model/perspective.py,
(128, 192, 2)) gives for every retina pixel the monitor coordinate it samples; interpolating it at p and
converting ``grid_sample`` coordinates to pixels (col = ((gx + 1) * 256 - 1) / 2, row = ((gy + 1) * 144 - 1) / 2)
gives the monitor pixel that feeds the unit's readout location directly.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from berg_ray.analysis.invivo import pearson
from berg_ray.config import FRAME_HEIGHT, FRAME_WIDTH
from berg_ray.errors import AnalysisInputError
from berg_ray.model.network import EncodingModel


def grid_to_pixels(grid: np.ndarray) -> np.ndarray:
    """``grid_sample`` coordinates (..., 2) (x, y in [-1, 1], align_corners=False) -> monitor pixels (col, row)."""
    coords = np.asarray(grid, dtype=np.float64)
    return np.stack([((coords[..., 0] + 1) * FRAME_WIDTH - 1) / 2, ((coords[..., 1] + 1) * FRAME_HEIGHT - 1) / 2],
                    axis=-1)


def readout_monitor_positions(sampling_grid: np.ndarray, readout_positions: np.ndarray) -> np.ndarray:
    """Monitor pixel (col, row) seen at each readout position.

    Args:
        sampling_grid: (128, 192, 2) perspective grid: monitor ``grid_sample`` coordinates of each retina pixel.
        readout_positions: (U, 2) readout positions (x, y) in [-1, 1] (``tanh(mu)``).

    Returns:
        float64 (U, 2) monitor pixels (col, row); may lie off the screen (0..255, 0..143) where the retina sees
        beyond the monitor.
    """
    if np.ndim(sampling_grid) != 3 or np.shape(sampling_grid)[-1] != 2:
        raise AnalysisInputError(f"need sampling_grid (H, W, 2), got {np.shape(sampling_grid)}")
    return grid_to_pixels(values_at_positions(sampling_grid, readout_positions, "sampling_grid", "readout_positions"))


def values_at_positions(field: np.ndarray, positions: np.ndarray, field_name: str = "field",
                        positions_name: str = "positions") -> np.ndarray:
    """A per-retina-pixel map (H, W, C) bilinearly interpolated at readout positions (U, 2) (x, y in [-1, 1];
    ``grid_sample``: align_corners=False, border padding, as the readout samples features) -> float64 (U, C).

    Raises AnalysisInputError (naming ``field_name`` and ``positions_name``) on other shapes."""
    values = torch.as_tensor(np.asarray(field), dtype=torch.float64)
    points = torch.as_tensor(np.asarray(positions), dtype=torch.float64)
    if values.ndim != 3 or points.ndim != 2 or points.shape[1] != 2:
        raise AnalysisInputError(f"need {field_name} (H, W, C) and {positions_name} (U, 2), got "
                                 f"{tuple(values.shape)} and {tuple(points.shape)}")
    sampled = F.grid_sample(values.permute(2, 0, 1)[None], points[None, :, None, :], mode="bilinear",
                            padding_mode="border", align_corners=False)  # (1, C, U, 1)
    return sampled[0, :, :, 0].T.numpy()


def model_readout_monitor_positions(model: EncodingModel, scan_id: str) -> np.ndarray:
    """:func:`readout_monitor_positions` of every unit (readout order) of one loaded scan of ``model``."""
    grid = model.front_ends[scan_id].perspective.grid.detach().cpu().numpy()
    positions = model.readouts[scan_id].positions.detach().cpu().numpy()
    return readout_monitor_positions(grid, positions)


def rf_agreement(rf_centres_px: np.ndarray, mapped_px: np.ndarray) -> dict[str, float]:
    """Agreement of RF centres with mapped readout positions (both (U, 2) pixels; units with NaN are left out).

    Returns:
        ``n_units``, ``median_distance_px`` (per-unit Euclidean distance), ``r_x`` and ``r_y`` (Pearson
        correlations across units of the column and row coordinates).
    """
    centres, mapped = np.asarray(rf_centres_px, dtype=np.float64), np.asarray(mapped_px, dtype=np.float64)
    keep = np.isfinite(centres).all(axis=1) & np.isfinite(mapped).all(axis=1)
    distance = np.hypot(*(centres[keep] - mapped[keep]).T)
    return {"n_units": int(keep.sum()),
            "median_distance_px": float(np.median(distance)) if keep.any() else float("nan"),
            "r_x": pearson(centres[keep, 0], mapped[keep, 0]), "r_y": pearson(centres[keep, 1], mapped[keep, 1])}
