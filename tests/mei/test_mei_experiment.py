"""``berg-ray experiment mei`` end to end on the demo release (real model, real gradients, real Ray actors, real
Parquet): every MEI beats the gratings, the noise and the other units' MEIs through the ordinary inference path;
re-runs skip done units and recompute exactly a deleted one (same bytes); bad flags exit 2 with nothing written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from berg_ray.cli import main
from tests.test_experiment_figures import PNG_SIGNATURE
from tests.test_experiments import png_title

SCAN = "session-8_scan-5"
UNITS = (3, 17, 40)
# Small settings for CPU: 4 frames (2 of burn-in), a short run with larger steps (the clip) than the default.
SMALL = ["--units", ",".join(map(str, UNITS)), "--frames", "4", "--burn-in-frames", "2", "--steps", "14",
         "--clip", "3e-7", "--units-per-batch", "2", "--directions", "4", "--repeats", "1", "--device", "cpu",
         "--num-workers", "1"]


def _argv(berg_dir: Path, out: Path, *extra: str) -> list[str]:
    return ["experiment", "mei", "--berg-dir", str(berg_dir), "--sessions", SCAN, "--out", str(out), *SMALL, *extra]


@pytest.mark.slow
def test_mei_experiment_end_to_end(ray_cluster, demo_berg_dir: Path, tmp_path: Path, capsys) -> None:
    assert main(_argv(demo_berg_dir, tmp_path)) == 0
    printed = capsys.readouterr().out
    assert "mei: 3 of 3 units to optimise (0 done before) in 2 batches of <= 2, 14 steps x 4 frames (static): " \
           "168 forward+backward frame-passes" in printed
    where = tmp_path / "mei"
    table = pd.read_parquet(where / f"{SCAN}.parquet")
    assert table["readout_id"].tolist() == list(UNITS) and table["steps"].eq(14).all()
    assert {"unit_id", "area", "field", "mei_rate", "best_grating_rate", "best_noise_rate", "ratio_grating",
            "ratio_noise", "best_other_mei_rate", "objective", "readout_col", "readout_row"} <= set(table.columns)
    print(table[["readout_id", "mei_rate", "ratio_grating", "ratio_noise", "ratio_other_mei"]].to_string())
    # The validation: through the ordinary inference path on the uint8 MEIs, each beats every comparison.
    assert table["valid"].all(), table.to_string()
    assert (table["mei_rate"] > table[["best_grating_rate", "best_noise_rate", "best_other_mei_rate"]].max(axis=1)).all()
    summary = pd.read_parquet(where / "summary.parquet")
    assert summary["fraction_invalid"].tolist() == [0.0] and summary["units"].tolist() == [3]
    meis = {u: np.load(where / SCAN / f"readout-{u:05d}.npy") for u in UNITS}
    for video in meis.values():
        assert video.dtype == np.uint8 and video.shape == (4, 144, 256) and (video == video[:1]).all()  # static
    figure = (where / f"{SCAN}.png").read_bytes()
    assert figure[:8] == PNG_SIGNATURE and png_title(figure).startswith(f"{SCAN}: static MEIs (4 frames, 14 steps")

    # Resumable: a re-run optimises nothing; deleting one unit's MEI recomputes it alone, to the same bytes (unit 40
    # ran alone in the first run too: in another batch the model's batched kernels may round a level differently).
    assert main(_argv(demo_berg_dir, tmp_path, "--quiet")) == 0
    assert "mei: 0 of 3 units to optimise (3 done before) in 0 batches" in capsys.readouterr().out
    (where / SCAN / f"readout-{UNITS[2]:05d}.npy").unlink()
    stamp = (where / SCAN / f"readout-{UNITS[0]:05d}.npy").stat().st_mtime_ns
    assert main(_argv(demo_berg_dir, tmp_path, "--quiet")) == 0
    assert "mei: 1 of 3 units to optimise (2 done before) in 1 batches" in capsys.readouterr().out
    assert np.array_equal(np.load(where / SCAN / f"readout-{UNITS[2]:05d}.npy"), meis[UNITS[2]])
    assert (where / SCAN / f"readout-{UNITS[0]:05d}.npy").stat().st_mtime_ns == stamp
    pd.testing.assert_frame_equal(pd.read_parquet(where / f"{SCAN}.parquet"), table)
    # Other settings into the same output would mix MEIs of two optimisations: refused.
    assert main(_argv(demo_berg_dir, tmp_path, "--quiet", "--seed", "1")) == 2
    assert "already holds an experiment made with" in capsys.readouterr().err


@pytest.mark.parametrize(("extra", "message"), [
    (["--units", "top:0"], "--units 'top:0': N of top:N must be a positive integer"),
    (["--units", "3,x"], "'x' is not a readout index"),
    (["--units", "64"], "readout index 64 is out of range for session-8_scan-5, which has 64 units"),
    (["--frames", "4", "--burn-in-frames", "4"], "--frames 4 must be more than --burn-in-frames 4"),
    (["--steps", "0"], "--steps 0 must be an integer from 1"),
    (["--units-per-batch", "0"], "--units-per-batch 0 must be from 1 to 1024"),
    (["--clip", "0"], "--clip 0.0 must be a finite number above 0"),
    (["--sessions", "session-9_scan-9"], "session-9_scan-9"),
])
def test_mei_bad_options_exit_2_with_nothing_written(demo_berg_dir: Path, tmp_path: Path, capsys, extra, message):
    argv = ["experiment", "mei", "--berg-dir", str(demo_berg_dir), "--sessions", SCAN, "--out", str(tmp_path / "o"),
            "--units", "0", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "o").exists()


def test_mei_units_flag_is_required(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["experiment", "mei", "--berg-dir", str(tmp_path), "--out", str(tmp_path)])
    assert exit_info.value.code == 2 and "--units" in capsys.readouterr().err
