"""Figures of the in-silico experiments (matplotlib, PNG, Agg backend; no display needed).

Needs matplotlib (a dependency in pyproject.toml); the experiments import this module only to draw.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from berg_ray.config import FRAME_HEIGHT, FRAME_WIDTH, ROIS

AREA_COLOURS = {"V1": "tab:blue", "LM": "tab:orange", "AL": "tab:green", "RL": "tab:red", "": "tab:grey"}
N_EXAMPLES = 4
DPI = 110


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def tuning_figure(table: pd.DataFrame, curves: pd.DataFrame, title: str, path: Path) -> Path:
    """Six panels of one scan's tuning experiment, saved as PNG.

    Args:
        table: per-unit tuning table (``tuning_table`` plus ``readout_col`` / ``readout_row``).
        curves: mean response per direction, index directions (deg), columns readout indices.
        title: figure title (scan and a note on the weights).
        path: PNG file to write.
    """
    plt = _pyplot()
    fig = plt.figure(figsize=(15, 9))
    polar = fig.add_subplot(2, 3, 1, projection="polar")
    examples = table["OSI"].fillna(-1).to_numpy().argsort()[::-1][:N_EXAMPLES]
    angles = np.radians(np.append(curves.index.to_numpy(dtype=float), curves.index[0]))
    for unit in examples:
        values = curves[unit].to_numpy()
        polar.plot(angles, np.append(values, values[0]) / values.max(),
                   label=f"unit {unit}: OSI {table['OSI'].iloc[unit]:.2f}, DSI {table['DSI'].iloc[unit]:.2f}")
    polar.set_rlabel_position(250)
    polar.set_title("example tuning curves (normalised response vs direction)", fontsize=10)
    polar.legend(fontsize=7, loc="lower left", bbox_to_anchor=(-0.25, -0.3))
    for position, name in ((2, "OSI"), (3, "DSI")):
        ax = fig.add_subplot(2, 3, position)
        groups = [(area, table.loc[table["area"] == area, name].dropna()) for area in ROIS]
        groups = [(area, values) for area, values in groups if len(values)]
        ax.hist([values for _, values in groups], bins=np.linspace(0, 1, 21),
                color=[AREA_COLOURS[a] for a, _ in groups], label=[f"{a} (n={len(v)})" for a, v in groups],
                stacked=True)
        ax.set(xlabel=f"{name} (in silico)", ylabel="units", title=f"{name} distribution by area")
        ax.legend(fontsize=8)
    ax = fig.add_subplot(2, 3, 4)
    points = ax.scatter(table["readout_col"], table["readout_row"], c=table["pref_ori"], cmap="hsv", vmin=0,
                        vmax=180, s=14)
    fig.colorbar(points, ax=ax, label="preferred orientation (deg)")
    _monitor_axes(ax, "readout positions on the monitor by pref_ori")
    ax = fig.add_subplot(2, 3, 5)
    for area, part in table.groupby("area"):
        ax.scatter(part["readout_col"], part["readout_row"], s=14, color=AREA_COLOURS.get(area, "tab:grey"),
                   label=area or "none")
    ax.legend(fontsize=8)
    _monitor_axes(ax, "readout positions on the monitor by area")
    ax = fig.add_subplot(2, 3, 6)
    for name, marker in (("OSI", "o"), ("DSI", "^"), ("gOSI", "s"), ("gDSI", "x")):
        ax.scatter(table[f"invivo_{name}"], table[name], s=10, marker=marker, label=name)
    ax.plot([0, 1], [0, 1], color="black", linewidth=0.8, label="identity")
    ax.set(xlabel="in vivo (metadata)", ylabel="in silico", xlim=(0, 1), ylim=(0, 1),
           title="in silico vs in vivo tuning indices")
    ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, plt, path, title)


def rf_figure(table: pd.DataFrame, title: str, path: Path) -> Path:
    """RF centres against mapped readout positions of one scan (per-unit table of the RF experiment), as PNG."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 5))
    ax = axes[0]
    for _, row in table.iterrows():
        ax.plot([row["readout_col"], row["rf_col"]], [row["readout_row"], row["rf_row"]], color="0.7", linewidth=0.6)
    ax.scatter(table["readout_col"], table["readout_row"], s=14, label="readout position (mapped)")
    ax.scatter(table["rf_col"], table["rf_row"], s=14, marker="x", label="RF centre (dots)")
    ax.legend(fontsize=8)
    _monitor_axes(ax, "RF centres and mapped readout positions")
    for ax, axis, name in ((axes[1], "col", "x (column)"), (axes[2], "row", "y (row)")):
        ax.scatter(table[f"readout_{axis}"], table[f"rf_{axis}"], s=12)
        limit = FRAME_WIDTH if axis == "col" else FRAME_HEIGHT
        ax.plot([0, limit], [0, limit], color="black", linewidth=0.8, label="identity")
        ax.set(xlabel=f"readout position {name} (monitor px)", ylabel=f"RF centre {name} (monitor px)",
               title=f"{name}: r = {table[f'readout_{axis}'].corr(table[f'rf_{axis}']):.2f}")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, plt, path, title)


def _monitor_axes(ax, title: str) -> None:
    from matplotlib.patches import Rectangle

    ax.add_patch(Rectangle((-0.5, -0.5), FRAME_WIDTH, FRAME_HEIGHT, fill=False, edgecolor="black", linewidth=1))
    ax.set(xlabel="monitor column (px)", ylabel="monitor row (px)", title=title)
    ax.set_aspect("equal")
    ax.invert_yaxis()
    ax.title.set_fontsize(10)


def _save(fig, plt, path: Path, title: str) -> Path:
    """Write the PNG (its ``Title`` text chunk = the figure title, for catalogues and tests) so ``path`` appears
    complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(temp, dpi=DPI, format="png", metadata={"Title": title})
    plt.close(fig)
    temp.replace(path)
    return path


def domains_figure(per_frame: dict[str, np.ndarray], title: str, path: Path) -> Path:
    """Population responses per stimulus domain, as PNG.

    Args:
        per_frame: domain -> responses (T, U) after the burn-in.
        title: figure title.
        path: PNG file to write.
    """
    from berg_ray.config import FRAME_RATE_HZ

    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5))
    for domain, responses in per_frame.items():
        left.plot(np.arange(responses.shape[0]) / FRAME_RATE_HZ, responses.mean(axis=1), label=domain)
    left.set(xlabel="time from stimulus onset (s)", ylabel="population mean response (model units)",
             title="population mean response over time")
    left.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    names = list(per_frame)
    right.boxplot([per_frame[d].mean(axis=0) for d in names], showfliers=False)
    right.set_xticks(range(1, len(names) + 1), names)
    right.set(xlabel="stimulus domain", ylabel="per-unit mean response (model units)",
              title="per-unit mean responses by domain")
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, plt, path, title)


N_THUMBNAILS = 6


def raster_figure(responses: np.ndarray, frames: np.ndarray | None, title: str, path: Path,
                  times_s: np.ndarray | None = None) -> Path:
    """Units x frames raster (see :func:`draw_raster`), saved as PNG."""
    plt = _pyplot()
    return _save(draw_raster(responses, frames, title, times_s), plt, path, title)


def draw_raster(responses: np.ndarray, frames: np.ndarray | None, title: str, times_s: np.ndarray | None = None):
    """Units x frames raster (each unit scaled to its own maximum, sorted by the frame of its peak), with up to six
    evenly spaced stimulus frames above it; returns the matplotlib figure (its last two axes: raster, colour bar).

    Args:
        responses: (T, U) responses.
        frames: uint8 (T, H, W) stimulus frames aligned with ``responses`` (frame t shown while row t), or None.
        title: figure title.
        times_s: (T,) time of each row in seconds from the video's start (a sweep's ``times_s``, which counts
            the frames ``--skip-frames`` dropped); default t / 30.
    """
    from berg_ray.config import FRAME_RATE_HZ

    plt = _pyplot()
    n_frames = responses.shape[0]
    times = np.arange(n_frames) / FRAME_RATE_HZ if times_s is None else np.asarray(times_s, dtype=np.float64)
    rows = 2 if frames is not None else 1
    fig = plt.figure(figsize=(12, 7 if frames is not None else 5), layout="constrained")
    grid = fig.add_gridspec(rows, N_THUMBNAILS, height_ratios=[1, 3] if frames is not None else [1])
    if frames is not None:
        for slot, t in enumerate(np.linspace(0, min(len(frames), n_frames) - 1, N_THUMBNAILS).round().astype(int)):
            ax = fig.add_subplot(grid[0, slot])
            ax.imshow(frames[t], cmap="gray", vmin=0, vmax=255)
            ax.set_title(f"t = {times[t]:.2f} s", fontsize=9)
            ax.axis("off")
    ax = fig.add_subplot(grid[rows - 1, :])
    scaled = responses / np.maximum(responses.max(axis=0, keepdims=True), 1e-12)
    order = np.argsort(np.argmax(responses, axis=0), kind="stable")
    start = float(times[0]) if n_frames else 0.0
    image = ax.imshow(scaled[:, order].T, aspect="auto", cmap="viridis", interpolation="nearest",
                      extent=(start, start + n_frames / FRAME_RATE_HZ, len(order), 0))
    fig.colorbar(image, ax=ax, label="response / unit's maximum")
    skipped = f"; the first {round(start * FRAME_RATE_HZ)} frames ({start:.2f} s) skipped" if start > 0 else ""
    ax.set(xlabel=f"time from the video's start (s, frames at 30 Hz{skipped})",
           ylabel="unit (sorted by time of peak)")
    fig.suptitle(title)
    return fig


def accuracy_figure(table: pd.DataFrame, title: str, path: Path) -> Path:
    """Prediction accuracy of one scan (``berg-ray evaluate``'s per-unit table), as PNG: CC_norm by area,
    predicted vs released CC_norm, and CC_abs against its ceiling CC_max (the reference notebook's plot)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 5))
    finite = table["cc_norm"][np.isfinite(table["cc_norm"])]
    low, high = (min(0.0, finite.min()), max(1.0, finite.max())) if len(finite) else (0.0, 1.0)
    edges = np.linspace(low, high, 26)
    groups = [(area, table.loc[table["area"] == area, "cc_norm"].dropna()) for area in (*ROIS, "")]
    groups = [(area, values) for area, values in groups if len(values)]
    if groups:
        axes[0].hist([v for _, v in groups], bins=edges, stacked=True, color=[AREA_COLOURS[a] for a, _ in groups],
                     label=[f"{a or 'none'} (n={len(v)}, median {v.median():.2f})" for a, v in groups])
        axes[0].legend(fontsize=8)
    axes[0].set(xlabel="CC_norm (predicted)", ylabel="units", title="CC_norm distribution by area")
    for area, part in ((area, table[table["area"] == area]) for area in (*ROIS, "")):
        if part.empty:
            continue
        colour = AREA_COLOURS.get(area, "tab:grey")
        axes[1].scatter(part["released_cc_norm"], part["cc_norm"], s=8, color=colour, label=area or "none")
        axes[2].scatter(part["cc_max"], part["cc_abs"], s=8, color=colour, label=area or "none")
    axes[1].set(xlabel="CC_norm released (recorded behaviour)", ylabel="CC_norm predicted here",
                title="predicted vs released CC_norm")
    median = finite.median() if len(finite) else float("nan")
    axes[2].set(xlabel="CC_max", ylabel="CC_abs", xlim=(0, 1), ylim=(0, 1), title=f"median CC_norm: {median:.2f}")
    for ax in axes[1:]:
        ax.plot([0, 1], [0, 1], color="black", linewidth=0.8, linestyle="--", label="identity")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, plt, path, title)
