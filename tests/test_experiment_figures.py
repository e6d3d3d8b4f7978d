"""The experiment figures render to non-empty PNGs from synthetic tables (needs matplotlib, a dependency)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from berg_ray.analysis.tuning import direction_tuning
from berg_ray.experiments.figures import domains_figure, raster_figure, rf_figure, tuning_figure

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def synthetic_tuning(n_units: int = 40, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    directions = np.arange(8) * 45.0
    mu = rng.uniform(0, 360, n_units)
    curves = 0.2 + np.exp(2 * (np.cos(np.radians(directions[:, None] - mu[None])) - 1))
    table = direction_tuning(curves, directions)
    table["area"] = rng.choice(["V1", "LM", "AL", "RL"], n_units)
    for name in ("OSI", "DSI", "gOSI", "gDSI"):
        table[f"invivo_{name}"] = rng.uniform(0, 1, n_units)
    table["readout_col"], table["readout_row"] = rng.uniform(0, 256, n_units), rng.uniform(0, 144, n_units)
    return table, pd.DataFrame(curves, index=directions)


def test_tuning_figure_is_a_png(tmp_path: Path) -> None:
    table, curves = synthetic_tuning()
    path = tuning_figure(table, curves, "synthetic units", tmp_path / "tuning.png")
    assert path.read_bytes()[:8] == PNG_SIGNATURE and path.stat().st_size > 20_000


def test_rf_figure_is_a_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    readout = rng.uniform([0, 0], [256, 144], (30, 2))
    rf = readout + rng.normal(0, 10, (30, 2))
    table = pd.DataFrame({"readout_col": readout[:, 0], "readout_row": readout[:, 1], "rf_col": rf[:, 0],
                          "rf_row": rf[:, 1]})
    path = rf_figure(table, "synthetic units", tmp_path / "rf.png")
    assert path.read_bytes()[:8] == PNG_SIGNATURE and path.stat().st_size > 20_000


def test_domains_figure_is_a_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    per_frame = {domain: rng.uniform(0.5, 1.5, (12, 20)) for domain in ("blank", "grating", "rdk")}
    path = domains_figure(per_frame, "synthetic units", tmp_path / "domains.png")
    assert path.read_bytes()[:8] == PNG_SIGNATURE and path.stat().st_size > 20_000


def test_raster_figure_is_a_png(tmp_path: Path) -> None:
    from berg_ray.stimuli import drifting_grating

    responses = np.random.default_rng(3).uniform(0.1, 1.0, (20, 50))
    path = raster_figure(responses, drifting_grating(0.0, 20), "synthetic units", tmp_path / "raster.png")
    assert path.read_bytes()[:8] == PNG_SIGNATURE and path.stat().st_size > 20_000
    without_frames = raster_figure(responses, None, "synthetic units", tmp_path / "raster_only.png")
    assert without_frames.read_bytes()[:8] == PNG_SIGNATURE
