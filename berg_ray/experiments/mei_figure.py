"""The MEI experiment's figure per scan (matplotlib, PNG): the MEIs, each with its unit's mapped readout position
marked, and the unit-by-unit response matrix to each other's MEIs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from berg_ray.config import FRAME_HEIGHT, FRAME_WIDTH

MAX_SHOWN = 16  # MEIs drawn (the first units of the table)
MAX_MATRIX = 48  # units of the response matrix


def mei_figure(work_dir, scan: str, table: pd.DataFrame, meis: np.ndarray, title: str, path: Path) -> Path:
    """Draw one scan's figure to ``path``.

    Args:
        work_dir: the experiment's ExperimentDir (the MEIs are read from it).
        scan: the scan id.
        table: the scan's per-unit table (readout_id, area, readout_col/row, ratios, valid).
        meis: (N, N) mean rate of unit j (column) to the MEI of unit i (row), N = len(table).
        title: the figure's title.
        path: PNG to write.
    """
    from berg_ray.experiments.figures import _pyplot, _save
    from berg_ray.experiments.mei_store import read_mei

    plt = _pyplot()
    shown = table.head(MAX_SHOWN)
    cols = min(4, math.ceil(math.sqrt(len(shown))))
    rows = math.ceil(len(shown) / cols)
    fig = plt.figure(figsize=(3.4 * cols + 6.0, max(2.3 * rows + 1.2, 5.0)))
    grid = fig.add_gridspec(rows, cols + 2, width_ratios=[1.0] * cols + [0.15, 1.9])
    for k, unit in enumerate(shown.itertuples()):
        video = read_mei(work_dir, scan, int(unit.readout_id))
        ax = fig.add_subplot(grid[k // cols, k % cols])
        ax.imshow(video[-1], cmap="gray", vmin=0, vmax=255, extent=(-0.5, FRAME_WIDTH - 0.5, FRAME_HEIGHT - 0.5,
                                                                      -0.5))
        ax.plot(unit.readout_col, unit.readout_row, marker="+", color="red", markersize=14, markeredgewidth=2)
        ax.set_xlim(-0.5, FRAME_WIDTH - 0.5)
        ax.set_ylim(FRAME_HEIGHT - 0.5, -0.5)
        ax.set_xticks([])
        ax.set_yticks([])
        mark = "" if unit.valid else " (not valid)"
        ax.set_title(f"readout {unit.readout_id} {unit.area or '-'}: x{unit.ratio_grating:.2f} grating, "
                     f"x{unit.ratio_noise:.2f} noise{mark}", fontsize=8)
    _matrix_panel(fig.add_subplot(grid[:, cols + 1]), table, meis, fig)
    fig.suptitle(f"{title}\nlast frame of each MEI; + = the unit's readout position on the monitor", fontsize=10)
    fig.tight_layout()
    return _save(fig, plt, path, title)


def _matrix_panel(ax, table: pd.DataFrame, meis: np.ndarray, fig) -> None:
    """Rate of unit j to the MEI of unit i, divided by unit j's rate to its own MEI (the diagonal is 1)."""
    n = min(len(table), MAX_MATRIX)
    rates = meis[:n, :n]
    relative = rates.T / np.diagonal(rates)[:, None]  # (unit j, MEI i)
    image = ax.imshow(relative, cmap="magma", vmin=min(float(np.nanmin(relative)), 1.0),
                      vmax=max(1.0, float(np.nanmax(relative))))
    fig.colorbar(image, ax=ax, fraction=0.046, label="rate / rate to own MEI")
    labels = [str(r) for r in table["readout_id"].head(n)]
    step = max(1, n // 16)
    ax.set_xticks(range(0, n, step), labels[::step], rotation=90, fontsize=7)
    ax.set_yticks(range(0, n, step), labels[::step], fontsize=7)
    not_own = int((relative.max(axis=1) > 1.0).sum())
    ax.set(xlabel="MEI of readout", ylabel="unit (readout)",
           title=f"each unit's rate to each MEI / to its own MEI\n({n} units; {not_own} prefer another's MEI)")
    ax.title.set_fontsize(9)
