"""``berg-ray experiment properties`` end to end on the demo release (a real local Ray sweep), and its refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from berg_ray.analysis.retinotopy import grid_to_pixels
from berg_ray.analysis.structure_function import visual_frame
from berg_ray.checkpoint.release import load_readout, read_scan_params, read_scan_table
from berg_ray.cli import main
from berg_ray.experiments.properties_stimuli import properties_set
from berg_ray.model.functional import rotation_matrix
from berg_ray.model.perspective import monitor_coordinates
from berg_ray.units import ScanId
from tests.test_experiment_figures import PNG_SIGNATURE
from tests.test_experiments import png_title

SCANS = ("session-4_scan-7", "session-8_scan-5")
UNITS = [0, 3, 5, 6, 7, 8, 9, 40]


def test_generated_set_is_seeded_and_mixed() -> None:
    first, again = properties_set(5, 3, burn_in=2, seed=4), properties_set(5, 3, burn_in=2, seed=4)
    assert list(first.videos) == ["clip-000_noise", "clip-001_grating", "clip-002_gabor", "clip-003_rdk",
                                  "clip-004_noise"]
    assert all(v.shape == (5, 144, 256) and v.dtype == np.uint8 and (v[:2] == 128).all()
               for v in first.videos.values())
    assert all((first.videos[k] == again.videos[k]).all() for k in first.videos)
    other = properties_set(5, 3, burn_in=2, seed=5)
    assert (other.videos["clip-000_noise"] != first.videos["clip-000_noise"]).any()


def _monitor_pixels_of_degrees(berg_dir: Path, scan: str, table: pd.DataFrame) -> np.ndarray:
    """The monitor pixels where the rays of the table's (azimuth, elevation) hit the monitor plane."""
    scan_id = ScanId.parse(scan)
    params = read_scan_params(berg_dir, scan_id, read_scan_table(berg_dir)[scan_id])
    axes = rotation_matrix(params["perspective.monitor.angle"].double())
    centre = params["perspective.monitor.center"].double()
    forward, right, down = visual_frame(axes.numpy(), centre.numpy())
    az, el = np.radians(table["azimuth_deg"].to_numpy()), np.radians(table["elevation_deg"].to_numpy())
    rays = (np.cos(el) * np.cos(az))[:, None] * forward + (np.cos(el) * np.sin(az))[:, None] * right \
        - np.sin(el)[:, None] * down
    return grid_to_pixels(monitor_coordinates(torch.as_tensor(rays), axes, centre).numpy())


@pytest.mark.slow
def test_properties_end_to_end(ray_cluster, demo_berg_dir: Path, tmp_path: Path, capsys) -> None:
    argv = ["experiment", "properties", "--berg-dir", str(demo_berg_dir), "--sessions", ",".join(SCANS),
            "--out", str(tmp_path), "--units", "0,3,5-9,40", "--clips", "4", "--clip-frames", "3",
            "--burn-in-frames", "1", "--quiet"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "properties: 4 stimuli, 16 frames" in printed and "16 units, 56 pairs" in printed
    assert "median feature cosine" in printed and f"{tmp_path}/properties/<scan>_units.parquet" in printed
    where = tmp_path / "properties"
    rows = pd.read_parquet(where / "sweep")
    for scan in SCANS:
        units = pd.read_parquet(where / f"{scan}_units.parquet")
        assert units["readout_id"].tolist() == UNITS and units["area"].isin(["V1", "LM", "AL", "RL", ""]).all()
        features = np.stack(units["features"].to_list())
        weights = load_readout(demo_berg_dir, scan).weights.numpy()  # (4, 128, U)
        assert features.shape == (8, 512) and features.dtype == np.float32
        np.testing.assert_array_equal(features[:, 128 * 2 + 5], weights[2, 5, UNITS])  # stream-major
        # Degrees and pixels describe one ray: the ray of (azimuth, elevation) hits the monitor at the readout
        # pixel (a unit at the monitor centre has (0, 0) deg); right of centre is positive azimuth, up positive.
        hits = _monitor_pixels_of_degrees(demo_berg_dir, scan, units)
        mapped = units[["readout_col", "readout_row"]].to_numpy()
        on_screen = (units["readout_col"].between(0, 255) & units["readout_row"].between(0, 143)).to_numpy()
        assert on_screen.any()  # measured: within 0.022 px on the screen, 0.25 px far off it (interpolation)
        np.testing.assert_allclose(hits[on_screen], mapped[on_screen], atol=0.05)
        np.testing.assert_allclose(hits, mapped, atol=0.5)
        assert (np.sign(units["azimuth_deg"]) == np.sign(units["readout_col"] - 127.5)).all()
        assert (np.sign(units["elevation_deg"]) == np.sign(71.5 - units["readout_row"])).all()

        pairs = pd.read_parquet(where / f"{scan}_pairs.parquet")
        assert len(pairs) == 28 and (pairs["readout_id_a"] < pairs["readout_id_b"]).all()
        assert list(pairs.columns[-3:]) == ["feature_cosine", "rf_distance_deg", "signal_corr"]
        norms = np.linalg.norm(features.astype(np.float64), axis=1)
        a, b = (units.set_index("readout_id").index.get_indexer(pairs[c]) for c in ("readout_id_a", "readout_id_b"))
        np.testing.assert_allclose(pairs["feature_cosine"], (features[a].astype(np.float64) * features[b]).sum(1)
                                   / (norms[a] * norms[b]), atol=1e-9)
        assert pairs["rf_distance_deg"].between(0, 180).all()
        part = rows[rows["train_session"] == scan].sort_values("stimulus_id")
        frames = np.concatenate([np.stack(list(r)) for r in part["responses"]])  # (12, 64) after the burn-in
        assert frames.shape == (12, 64)
        expected = np.corrcoef(frames[:, UNITS].T.astype(np.float64))
        np.testing.assert_allclose(pairs["signal_corr"], expected[a, b], atol=1e-9)
        figure = (where / f"{scan}_pairs.png").read_bytes()
        assert figure[:8] == PNG_SIGNATURE
        assert png_title(figure) == f"{scan}: 8 units, 28 pairs; signal correlation over 4 stimuli (generated weights)"
    # Other units reuse the sweep (the stimulus set is the same); other stimuli into the same --out are refused.
    assert main([*argv[:8], "--units", "top:3", *argv[10:]]) == 0
    assert "6 units, 6 pairs" in capsys.readouterr().out
    assert len(pd.read_parquet(where / f"{SCANS[0]}_pairs.parquet")) == 3
    assert main([*argv[:-1], "--seed", "1", "--quiet"]) == 2
    assert "already holds an experiment made with" in capsys.readouterr().err


@pytest.mark.slow
def test_properties_with_given_stimuli(ray_cluster, demo_berg_dir: Path, tmp_path: Path, capsys) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    rng = np.random.default_rng(0)
    for name in ("b", "a"):
        np.save(videos / f"{name}.npy", rng.integers(0, 256, size=(3, 144, 256), dtype=np.uint8))
    argv = ["experiment", "properties", "--berg-dir", str(demo_berg_dir), "--sessions", SCANS[1], "--out",
            str(tmp_path / "out"), "--units", "1-4", "--stimuli", str(videos), "--burn-in-frames", "2", "--quiet"]
    assert main(argv) == 0
    assert "properties: 2 stimuli, 10 frames" in capsys.readouterr().out
    rows = pd.read_parquet(tmp_path / "out" / "properties" / "sweep")
    assert sorted(rows["stimulus_id"]) == ["a", "b"] and all(len(r) == 3 for r in rows["responses"])
    pairs = pd.read_parquet(tmp_path / "out" / "properties" / f"{SCANS[1]}_pairs.parquet")
    assert len(pairs) == 6 and pairs["signal_corr"].between(-1, 1).all()


def _refused(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_properties_refusals(demo_berg_dir: Path, tmp_path: Path, capsys) -> None:
    base = ["experiment", "properties", "--berg-dir", str(demo_berg_dir), "--out", str(tmp_path / "out")]
    assert "--units 'top:0'" in _refused([*base, "--units", "top:0"], capsys)
    assert "out of range" in _refused([*base, "--units", "3,64"], capsys)
    err = _refused([*base, "--max-pairs", "3000"], capsys)  # 2 scans x 64 units: 4,032 pairs
    assert "4,032 unit pairs" in err and "--max-pairs 3,000" in err and "raise --max-pairs" in err
    assert "--max-pairs 0 must be a positive" in _refused([*base, "--max-pairs", "0"], capsys)
    assert "is not a directory" in _refused([*base, "--stimuli", str(tmp_path / "missing")], capsys)
    (tmp_path / "empty").mkdir()
    assert "holds no .npy video" in _refused([*base, "--stimuli", str(tmp_path / "empty")], capsys)
    bad = tmp_path / "bad"
    bad.mkdir()
    np.save(bad / "float.npy", np.zeros((2, 144, 256), dtype=np.float32))
    assert "'float.npy' is float32 (2, 144, 256); need uint8" in _refused([*base, "--stimuli", str(bad)], capsys)
    (bad / "float.npy").write_bytes(b"not an array")
    assert "not a readable .npy array" in _refused([*base, "--stimuli", str(bad)], capsys)
    assert "clip_frames must be an integer >= 2" in _refused([*base, "--clip-frames", "1"], capsys)
    assert not (tmp_path / "out").exists()  # nothing written, no stimulus generated
