"""A generated release for demos and tests: the published files, keys and shapes, with seeded random weights.

The trained weights are public but large and need a download; a machine without network access (CI, a fresh
laptop) runs everything on this release instead. Weights are drawn so that responses vary across units and
frames; the perspective is near the trained one's geometry (monitor in front of the eye, small rotations).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from berg_ray.checkpoint.keys import Shape, core_key_shapes, scan_key_shapes
from berg_ray.checkpoint.manifest import write_manifest
from berg_ray.checkpoint.metadata import write_scan_metadata
from berg_ray.checkpoint.release import CORE_FILE, SCANS_FILE, UNITS_FILE
from berg_ray.config import (ANIMAL_ID, FRAME_HEIGHT, FRAME_WIDTH, METADATA_SUBDIR, RELEASE_SUBDIR,
                             RELEASED_UNIT_COUNTS, ROIS, WEIGHTS_SUBDIR, ScanId, all_scans)
from berg_ray.storage.publish import publish_directory
from berg_ray.units import GENERATED_KEY

DEMO_UNITS = 256  # units per scan unless told otherwise (the real scans have 5,130-9,941)
DEMO_SCANS = ("session-8_scan-5", "session-4_scan-7")


def write_demo_release(out_dir: str | os.PathLike[str], scan_ids: Sequence[ScanId | str] | None = None,
                       n_units: int | None = DEMO_UNITS, seed: int = 0, force: bool = False) -> Path:
    """Write a generated release in the BERG layout and return ``out_dir`` (the berg_dir).

    The release is built in a temp directory beside ``out_dir`` and renamed into place (berg_ray.storage.publish).

    Args:
        out_dir: directory to create; it may exist only if empty, unless ``force``.
        scan_ids: scans to write; None writes all 13 released scans.
        n_units: units per scan; None uses each scan's released unit count.
        seed: random seed; the same seed gives the same files.
        force: replace a non-empty ``out_dir`` completely.

    Raises:
        BergRayError: ``out_dir`` is not empty and ``force`` is False (nothing is written).

    The release root gets a ``manifest.json`` (size and sha256 of every file) written last.
    """
    scans = all_scans() if scan_ids is None else sorted({ScanId.parse(s) for s in scan_ids})
    return publish_directory(out_dir, lambda root: _write_release(root, scans, n_units, seed), force)


def _write_release(root: Path, scans: Sequence[ScanId], n_units: int | None, seed: int) -> None:
    weights = root / RELEASE_SUBDIR / WEIGHTS_SUBDIR
    metadata = root / RELEASE_SUBDIR / METADATA_SUBDIR
    weights.mkdir(parents=True, exist_ok=True)
    metadata.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    torch.save(_random_state(core_key_shapes(), generator), weights / CORE_FILE)
    counts = {s: n_units or RELEASED_UNIT_COUNTS[(s.session, s.scan)] for s in scans}
    rng = np.random.default_rng(seed)
    unit_ids = {s: np.sort(rng.choice(20 * counts[s], counts[s], replace=False)).astype(np.int64) for s in scans}
    for scan_id in scans:
        state = _random_state(scan_key_shapes(counts[scan_id]), generator) | _perspective_geometry(generator)
        torch.save(state, weights / scan_id.weights_file)
        write_scan_metadata(metadata / scan_id.metadata_file, _demo_metadata(scan_id, unit_ids[scan_id], rng))
    _write_csv(weights / SCANS_FILE, ("session", "scan_idx", "units"),
               [(s.session, s.scan, counts[s]) for s in scans])
    _write_csv(weights / UNITS_FILE, ("session", "scan_idx", "readout_id", "unit_id"),
               [(s.session, s.scan, u, int(i)) for s in scans for u, i in enumerate(unit_ids[s])])
    write_manifest(root / RELEASE_SUBDIR)  # size + sha256 of every file, checked whenever the release is read


def _random_state(shapes: dict[str, Shape], generator: torch.Generator) -> dict[str, Tensor]:
    return {key: _draw(key, shape, generator) for key, shape in shapes.items()}


def _draw(key: str, shape: Shape, generator: torch.Generator) -> Tensor:
    """One random entry; scales chosen so activity stays in a useful range through the network."""
    normal = torch.randn(shape, generator=generator)
    if key.endswith(".mask"):
        return ~torch.eye(shape[0], dtype=torch.bool).reshape(shape)
    if key.endswith(".zero"):
        return 0.02 * normal
    if ".gains." in key:
        return 1.0 + 0.1 * normal
    if ".biases." in key or key.startswith("readout.biases"):
        return 0.1 * normal
    if ".scales." in key:
        return 4.0 + normal
    if key.startswith("readout.position.mu"):
        return 0.6 * normal
    if key.startswith("readout.feature"):
        return 4.0 * normal / math.sqrt(128)
    if key.endswith("_std") or key.endswith(".sigma"):
        return 0.01 * normal.abs()
    fan_in = math.prod(shape[1:]) if len(shape) > 1 else 1
    return normal / math.sqrt(fan_in)


def _perspective_geometry(generator: torch.Generator) -> dict[str, Tensor]:
    """Monitor and retina entries with the trained model's fixed geometry (spec §3.2) and small random tilts."""
    return {
        "perspective.monitor.center": torch.tensor([0.0, 0.0, 0.5]) + 0.01 * torch.randn(3, generator=generator),
        "perspective.monitor.angle": 0.02 * torch.randn(3, generator=generator),
        "perspective.monitor_pixel.power": torch.tensor(1.7),
        "perspective.monitor_pixel.scale": torch.tensor(1.0),
        "perspective.monitor_pixel.offset": torch.tensor(0.0),
        "perspective.retina.grid": retina_grid(),
        "perspective.retina_pixel.logit": torch.tensor([1.0]),
        "perspective.retina_pixel.scale": torch.tensor([1.0]),
        "perspective.retina_pixel.offset": torch.tensor([0.0]),
        "perspective.mlp.linears.3.gains.0": torch.full((1, 3), 0.02),  # small eye rotation
        "perspective.mlp.linears.3.biases.0": torch.zeros(1, 3),
    }


def retina_grid(height: int = 128, width: int = 192) -> Tensor:
    """Unit ray directions (H, W, 3) of an equidistant retina, +-75 deg across the width (spec §3.2.2)."""
    x = torch.linspace(-1, 1, width) * ((width - 1) / width)
    y = (torch.linspace(-1, 1, height) * (height / width)) * ((width - 1) / width)
    yy, xx = torch.meshgrid(y, x, indexing="ij")
    rho = (torch.sqrt(xx**2 + yy**2) * (75 * math.pi / 180)).clamp(0, math.pi / 2)
    theta = torch.atan2(yy, xx)
    return torch.stack([rho.sin() * theta.cos(), rho.sin() * theta.sin(), rho.cos()], dim=-1)


def _demo_metadata(scan_id: ScanId, unit_ids: np.ndarray, rng: np.random.Generator) -> dict:
    n = unit_ids.shape[0]
    area = rng.integers(0, len(ROIS), n)
    field = rng.integers(0, len(scan_id.fields), n)
    calcium = {
        "session": scan_id.session, "scan": scan_id.scan, "animal_id": ANIMAL_ID, "unit_id": unit_ids,
        "coordinates": rng.uniform([0, 0, 100], [1000, 1000, 500], (n, 3)),
        "OSI": rng.uniform(0, 1, n), "DSI": rng.uniform(0, 1, n), "gOSI": rng.uniform(0, 1, n),
        "gDSI": rng.uniform(0, 1, n), "pref_ori": rng.uniform(0, 180, n), "pref_dir": rng.uniform(0, 360, n),
        "roi": {roi: (area == i).astype(np.int64) for i, roi in enumerate(ROIS)},
        "field_masks": {f"field_{f}": (field == i).astype(np.int64) for i, f in enumerate(scan_id.fields)},
    }
    cc_max = rng.uniform(0.5, 0.9, n)
    cc_abs = cc_max * rng.uniform(0.2, 0.9, n)
    return {"calcium_2p": calcium, "encoding_model": {"cc_abs": cc_abs, "cc_max": cc_max, "cc_norm": cc_abs / cc_max},
            GENERATED_KEY: "berg-ray demo-release: seeded random weights and metadata, not the trained model"}


def _write_csv(path: Path, header: tuple[str, ...], rows: list[tuple]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)  # CRLF line endings, like the published files
        writer.writerow(header)
        writer.writerows(rows)


def demo_videos(n_videos: int, n_frames: int, seed: int = 0) -> np.ndarray:
    """Drifting sinusoidal gratings with random orientation, frequency and speed: uint8 (B, T, 144, 256), 30 Hz."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:FRAME_HEIGHT, 0:FRAME_WIDTH].astype(np.float32)
    videos = np.empty((n_videos, n_frames, FRAME_HEIGHT, FRAME_WIDTH), dtype=np.uint8)
    for b in range(n_videos):
        angle, cycles_per_px = rng.uniform(0, np.pi), rng.uniform(0.01, 0.06)
        speed, contrast = rng.uniform(0.05, 0.4), rng.uniform(0.3, 1.0)
        phase = (np.cos(angle) * xx + np.sin(angle) * yy) * cycles_per_px * 2 * np.pi
        for t in range(n_frames):
            frame = 127.5 * (1 + contrast * np.sin(phase - speed * 2 * np.pi * t))
            videos[b, t] = np.clip(np.round(frame), 0, 255).astype(np.uint8)
    return videos
