"""Figure of ``experiment properties``: each pair measure against the others (matplotlib, PNG, Agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from berg_ray.analysis.invivo import pearson
from berg_ray.experiments.figures import _pyplot, _save

LABELS = {"feature_cosine": "readout feature cosine similarity", "rf_distance_deg": "RF distance (deg)",
          "signal_corr": "in-silico signal correlation"}
PANELS = (("rf_distance_deg", "feature_cosine"), ("rf_distance_deg", "signal_corr"),
          ("feature_cosine", "signal_corr"))
SCATTER_MAX = 3000  # more pairs than this are drawn as a hexbin density (log counts)
MEDIAN_BINS = 12


def pairs_figure(pairs: pd.DataFrame, title: str, path: Path) -> Path:
    """Three panels (x against y for ``PANELS``) of one scan's pair table, each with the binned median of y
    and the Pearson r over the pairs where both are finite; saved as PNG with ``title`` as its Title."""
    plt = _pyplot()
    from matplotlib import patheffects

    fig, axes = plt.subplots(1, 3, figsize=(16, 5.2))
    for ax, (x_name, y_name) in zip(axes, PANELS):
        x, y = pairs[x_name].to_numpy(np.float64), pairs[y_name].to_numpy(np.float64)
        keep = np.isfinite(x) & np.isfinite(y)
        x, y = x[keep], y[keep]
        if len(x) > SCATTER_MAX:
            cells = ax.hexbin(x, y, gridsize=50, bins="log", cmap="viridis", mincnt=1)
            fig.colorbar(cells, ax=ax, label="pairs (log)")
        elif len(x):
            ax.scatter(x, y, s=9, alpha=0.5, color="tab:blue", edgecolors="none")
        centres, medians = binned_median(x, y, MEDIAN_BINS)
        if len(centres):
            ax.plot(centres, medians, color="tab:red", linewidth=2, marker="o", markersize=3, label="binned median",
                    path_effects=[patheffects.withStroke(linewidth=4, foreground="white")])
            ax.legend(fontsize=8, loc="best")
        ax.set(xlabel=LABELS[x_name], ylabel=LABELS[y_name],
               title=f"Pearson r = {pearson(x, y):.2f} over {len(x):,} pairs")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, plt, path, title)


def binned_median(x: np.ndarray, y: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Median of y in ``n_bins`` equal-count bins of x (bins with fewer than 3 pairs are left out):
    (bin centres = median x of each bin, median y), empty when fewer than 3 pairs."""
    if len(x) < 3:
        return np.empty(0), np.empty(0)
    order = np.argsort(x, kind="stable")
    groups = [g for g in np.array_split(order, min(n_bins, len(x) // 3)) if len(g) >= 3]
    return np.array([np.median(x[g]) for g in groups]), np.array([np.median(y[g]) for g in groups])
