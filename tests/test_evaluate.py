"""`berg-ray evaluate`: synthetic recordings (model predictions times noise) -> per-unit table, figure, errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from berg_ray import BERG
from berg_ray.analysis.accuracy import correlations
from berg_ray.checkpoint.release import read_scan_units
from berg_ray.cli import main
from berg_ray.config import MODEL_ID
from berg_ray.experiments.evaluate import read_info

SCAN = "session-8_scan-5"
BURN_IN = 2


@pytest.fixture(scope="module")
def model(demo_berg_dir):
    berg = BERG(demo_berg_dir)
    return berg, berg.get_encoding_model(MODEL_ID, train_session=SCAN, device="cpu")


def _video(rng, frames):
    return rng.integers(0, 256, (frames, 144, 256), dtype=np.uint8)


def _noisy(rng, prediction, trials):
    """Recorded trials: the prediction (per video or per trial) times gamma noise of mean 1."""
    return (prediction * rng.gamma(4.0, 0.25, (trials, *prediction.shape[-2:]))).astype(np.float32)


def _evaluate(berg_dir, recordings, out, *extra):
    return main(["evaluate", "--berg-dir", str(berg_dir), "--session", SCAN, "--recordings", str(recordings),
                 "--out", str(out), "--device", "cpu", "--burn-in-frames", str(BURN_IN), "--quiet", *extra])


def test_scores_released_values_and_figure(demo_berg_dir, model, tmp_path, capsys):
    berg, handle = model
    rng = np.random.default_rng(0)
    predictions, recordings = [], []
    for index, (frames, trials) in enumerate([(9, 3), (7, 2)]):
        stimulus = _video(rng, frames)
        predictions.append(berg.encode(handle, stimulus))
        recordings.append(_noisy(rng, predictions[-1], trials))
        np.savez(tmp_path / f"video{index}.npz", stimulus=stimulus, responses=recordings[-1])
    assert _evaluate(demo_berg_dir, tmp_path, tmp_path / "out" / "scores.parquet") == 0
    table = pd.read_parquet(tmp_path / "out" / "scores.parquet")
    expected = correlations(predictions, recordings, burn_in_frames=BURN_IN)
    for name in ("cc_abs", "cc_max", "cc_norm"):
        np.testing.assert_allclose(table[name], expected[name], rtol=1e-5, atol=1e-7)
    units = read_scan_units(demo_berg_dir, SCAN)
    np.testing.assert_array_equal(table["readout_id"], np.arange(units.n_units))
    np.testing.assert_array_equal(table["unit_id"], units.unit_id)
    assert table["area"].tolist() == units.area.tolist() and table["field"].tolist() == units.field.tolist()
    for name in ("cc_abs", "cc_max", "cc_norm"):
        np.testing.assert_array_equal(table[f"released_{name}"], units.metadata["encoding_model"][name])
    assert read_info(tmp_path / "out" / "scores.parquet") == {
        "train_session": SCAN, "videos": 2, "trials": 5, "videos_with_behaviour": 0, "burn_in_frames": BURN_IN,
        "precision": "float32", "weights": "generated weights", "workers": 0}
    assert (tmp_path / "out" / "scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["scores.parquet", "scores.png"]
    printed = capsys.readouterr().out
    assert "without behaviour" in printed and "all" in printed and "wrote" in printed


@pytest.mark.slow  # a model run per trial (~5 s); scripts/test.sh --quick leaves it out
def test_each_trial_is_predicted_with_its_own_behaviour(demo_berg_dir, model, tmp_path):
    """Video 0: all-zero behaviour (the same as none); video 1: each trial with its own perspectives/modulations."""
    berg, handle = model
    rng = np.random.default_rng(1)
    zero, moving = _video(rng, 6), _video(rng, 6)
    perspectives = rng.normal(0, 0.5, (2, 6, 2)).astype(np.float32)
    modulations = rng.normal(0, 0.5, (2, 6, 2)).astype(np.float32)
    per_trial = berg.encode(handle, np.stack([moving, moving]), perspectives=perspectives, modulations=modulations)
    predictions = [berg.encode(handle, zero), per_trial]
    recordings = [_noisy(rng, predictions[0], 2), _noisy(rng, per_trial, 2)]
    np.savez(tmp_path / "a.npz", stimulus=zero, responses=recordings[0], perspectives=np.zeros((2, 6, 2)))
    np.savez(tmp_path / "b.npz", stimulus=moving, responses=recordings[1], perspectives=perspectives,
             modulations=modulations)
    assert _evaluate(demo_berg_dir, tmp_path, tmp_path / "scores.parquet") == 0
    table = pd.read_parquet(tmp_path / "scores.parquet")
    expected = correlations(predictions, recordings, burn_in_frames=BURN_IN)
    for name in ("cc_abs", "cc_max", "cc_norm"):
        np.testing.assert_allclose(table[name], expected[name], rtol=1e-5, atol=1e-7)
    assert read_info(tmp_path / "scores.parquet")["videos_with_behaviour"] == 2
    ignoring = correlations([predictions[0], berg.encode(handle, moving)], recordings, burn_in_frames=BURN_IN)
    assert not np.allclose(table["cc_abs"], ignoring["cc_abs"], rtol=1e-3)  # the behaviour changed the scores


def test_workers_on_ray_give_the_local_result(ray_cluster, demo_berg_dir, model, tmp_path):
    """--workers 2: videos spread over 2 Ray actors of the session's cluster, scored as in-process."""
    berg, handle = model
    rng = np.random.default_rng(2)
    for index in range(3):
        stimulus = _video(rng, 6)
        behaviour = {"modulations": rng.normal(0, 0.5, (2, 6, 2)).astype(np.float32)} if index == 1 else {}
        prediction = berg.encode(handle, np.stack([stimulus, stimulus]), **behaviour)
        np.savez(tmp_path / f"v{index}.npz", stimulus=stimulus, responses=_noisy(rng, prediction, 2), **behaviour)
    assert _evaluate(demo_berg_dir, tmp_path, tmp_path / "local.parquet") == 0
    assert _evaluate(demo_berg_dir, tmp_path, tmp_path / "ray.parquet", "--workers", "2") == 0
    local, on_ray = pd.read_parquet(tmp_path / "local.parquet"), pd.read_parquet(tmp_path / "ray.parquet")
    for name in ("cc_abs", "cc_max", "cc_norm"):
        np.testing.assert_allclose(on_ray[name], local[name], rtol=1e-6, atol=1e-9)
    assert read_info(tmp_path / "ray.parquet")["workers"] == 2


def test_ray_options_need_workers(demo_berg_dir, tmp_path, capsys):
    _write(tmp_path / "v.npz")
    assert _evaluate(demo_berg_dir, tmp_path, tmp_path / "s.parquet", "--address", "127.0.0.1:1") == 2
    assert "add --workers N" in capsys.readouterr().err


def _write(path, frames=5, trials=2, units=64, **members):
    arrays = {"stimulus": np.zeros((frames, 144, 256), np.uint8), "responses": np.ones((trials, frames, units))}
    arrays.update(members)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})


@pytest.mark.parametrize("make, message", [
    (lambda d: None, "holds no .npz file"),
    (lambda d: _write(d / "v.npz", perspective=np.zeros((2, 5, 2))), "unknown member 'perspective.npy'"),
    (lambda d: _write(d / "v.npz", responses=None), "lacks member(s) ['responses']"),
    (lambda d: _write(d / "v.npz", units=63), "responses has shape [2, 5, 63]; expected [R, T, U] = [R >= 1, 5, 64]"),
    (lambda d: _write(d / "v.npz", stimulus=np.zeros((5, 10, 10), np.uint8)), "stimulus has shape [5, 10, 10]"),
    (lambda d: _write(d / "v.npz", modulations=np.zeros((2, 4, 2))), "modulations has shape [2, 4, 2]; expected"),
    (lambda d: _write(d / "v.npz", trials=1), "needs repeated trials of the same video"),
    (lambda d: _write(d / "v.npz", frames=2), "2 frames, not more than --burn-in-frames 2"),
    (lambda d: _write(d / "v.npz", responses=np.ones((2, 5, 64), bool)), "responses has dtype bool"),
    (lambda d: (d / "v.npz").write_bytes(b"not a zip"), "v.npz: not a readable .npz file"),
    (lambda d: _write(d / "v.npz", perspectives=np.full((2, 5, 2), np.nan)), "perspectives contains NaN"),
    (lambda d: _write(d / "v.npz", stimulus=np.full((5, 144, 256), 300)), "v.npz: stimulus"),
    (lambda d: _write(d / "v.npz", responses=np.full((2, 5, 64), np.inf)), "recording of video 0 contains infinite"),
])
def test_bad_recordings_are_one_line_errors(demo_berg_dir, tmp_path, capsys, make, message):
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    make(recordings)
    assert _evaluate(demo_berg_dir, recordings, tmp_path / "out" / "scores.parquet") == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and len(error.splitlines()) == 1 and message in error, error
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.slow  # runs a whole Python process (scripts/test.sh --quick leaves it out)
def test_the_command_prints_one_line_without_traceback(demo_berg_dir, tmp_path):
    result = subprocess.run([sys.executable, "-m", "berg_ray.cli", "evaluate", "--berg-dir", str(demo_berg_dir),
                             "--session", SCAN, "--recordings", str(tmp_path / "missing"), "--out",
                             str(tmp_path / "scores.png")], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (f"error: --out {tmp_path / 'scores.png'} ends in .png, the figure's name; give "
                                     "the table a .parquet name")
