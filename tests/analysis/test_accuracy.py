"""berg_ray.analysis.accuracy.correlations against the reference's recipe (cajal/fnn c34328c fnn/evaluate), written
out here independently as per-unit numpy loops over the padded, concatenated trials."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from berg_ray.analysis.accuracy import ACCURACY_COLUMNS, CorrelationAccumulator, correlations
from berg_ray.errors import AnalysisInputError, BergRayError

RTOL = 1e-9


def _padded(arrays, repeats: int, burn_in: int) -> np.ndarray:
    """[R, N, U]: every video's trials (a [T, U] array is one trial) padded with NaN trials to ``repeats``, the
    burn-in dropped, the videos concatenated in time."""
    parts = []
    for array in arrays:
        array = np.asarray(array, dtype=np.float64)
        array = array[None] if array.ndim == 2 else array
        missing = np.full((repeats - array.shape[0], *array.shape[1:]), np.nan)
        parts.append(np.concatenate([array, missing])[:, burn_in:])
    return np.concatenate(parts, axis=1)


def _expected_from_trials(x_all: np.ndarray, p_all: np.ndarray) -> np.ndarray:
    """(U, 3) cc_abs, cc_max, cc_norm from padded [R, N, U] recordings and predictions, one unit at a time."""
    rows = []
    for unit in range(x_all.shape[2]):
        x = x_all[:, :, unit]
        t = (~np.isnan(x)).sum(axis=0)
        n = np.sqrt((t.sum() - t.size) / ((t - 1) / t**2).sum())
        y = np.nanmean(x, axis=0)
        signal = (n * np.var(y, ddof=1) - np.mean(np.nanvar(x, axis=1, ddof=1))) / (n - 1)
        cc_max = np.sqrt(signal / np.var(y, ddof=0)) if signal > 0 else np.nan
        cc_abs = np.corrcoef(np.nanmean(p_all[:, :, unit], axis=0), y)[0, 1]
        rows.append((cc_abs, cc_max, cc_abs / cc_max))
    return np.array(rows)


def _expected(predictions, recordings, burn_in: int) -> np.ndarray:
    repeats = max(np.shape(r)[0] for r in recordings)
    return _expected_from_trials(_padded(recordings, repeats, burn_in), _padded(predictions, repeats, burn_in))


def _videos(rng, trials, frames, units, noise=1.0):
    """Recordings (signal + noise per trial) and noisy predictions of the signal, one pair per video."""
    recordings, predictions = [], []
    for r, t in zip(trials, frames):
        signal = rng.gamma(2.0, 1.0, (t, units))
        recordings.append(signal + noise * rng.normal(size=(r, t, units)))
        predictions.append(signal + rng.normal(size=(t, units)))
    return predictions, recordings


def _check(table, expected):
    assert list(table.columns) == list(ACCURACY_COLUMNS) and table.index.name == "unit"
    assert table.index.tolist() == list(range(len(expected)))
    np.testing.assert_allclose(table.to_numpy(), expected, rtol=RTOL, atol=1e-12)


def test_equal_lengths_match_the_reference_layout():
    """With equal lengths the reference stacks [video, trial, frame, unit] and reshapes to [unit, trial, samples]."""
    rng = np.random.default_rng(0)
    predictions, recordings = _videos(rng, [4, 4, 4], [25, 25, 25], 7)
    stacked = np.stack(recordings).transpose(3, 1, 0, 2)[..., 10:]  # (U, R, V, T - burn-in)
    reference_layout = stacked.reshape(stacked.shape[0], stacked.shape[1], -1)  # (U, R, V * (T - burn-in))
    np.testing.assert_array_equal(reference_layout.transpose(1, 2, 0), _padded(recordings, 4, 10))
    _check(correlations(predictions, recordings), _expected(predictions, recordings, 10))


def test_uneven_repeats_and_unequal_lengths():
    rng = np.random.default_rng(1)
    predictions, recordings = _videos(rng, [2, 5, 3, 1], [20, 31, 14, 12], 9)
    table = correlations(predictions, recordings, burn_in_frames=3)
    _check(table, _expected(predictions, recordings, 3))
    assert np.isfinite(table.to_numpy()).all()


def test_per_trial_predictions_are_averaged_over_trials():
    rng = np.random.default_rng(2)
    _, recordings = _videos(rng, [3, 2, 4], [18, 22, 15], 5)
    per_trial = [r + rng.normal(size=r.shape) for r in recordings]
    _check(correlations(per_trial, recordings, burn_in_frames=2), _expected(per_trial, recordings, 2))
    mixed = [per_trial[0], per_trial[1].mean(axis=0), per_trial[2]]  # per trial and per video may be mixed
    np.testing.assert_allclose(correlations(mixed, recordings, 2).to_numpy(),
                               correlations(per_trial, recordings, 2).to_numpy(), rtol=RTOL)


def test_nan_in_a_recording_is_a_missing_trial():
    rng = np.random.default_rng(3)
    predictions, recordings = _videos(rng, [4, 3], [20, 16], 6)
    recordings[0][1, 5:9, 2] = np.nan
    recordings[1][0, :, 4] = np.nan  # a whole trial of one unit missing
    _check(correlations(predictions, recordings, 1), _expected(predictions, recordings, 1))


def test_padding_missing_trials_with_nan_changes_nothing():
    rng = np.random.default_rng(4)
    predictions, recordings = _videos(rng, [2, 4], [15, 15], 3)
    padded = [np.concatenate([recordings[0], np.full((2, 15, 3), np.nan)]), recordings[1]]
    np.testing.assert_allclose(correlations(predictions, padded, 2).to_numpy(),
                               correlations(predictions, recordings, 2).to_numpy(), rtol=RTOL)


def test_noise_free_trials_and_a_perfect_prediction():
    """Identical trials: SP = P, so cc_max = sqrt(N / (N - 1)) with the reference's normalisations (1 as N grows)."""
    rng = np.random.default_rng(5)
    signals = [rng.gamma(2.0, 1.0, (t, 4)) for t in (30, 40)]
    recordings = [np.repeat(s[None], 3, axis=0) for s in signals]
    table = correlations(signals, recordings, burn_in_frames=10)
    n_samples = 20 + 30
    np.testing.assert_allclose(table["cc_max"], np.sqrt(n_samples / (n_samples - 1)), rtol=1e-12)
    np.testing.assert_allclose(table["cc_abs"], 1.0, rtol=1e-12)
    np.testing.assert_allclose(table["cc_norm"], np.sqrt((n_samples - 1) / n_samples), rtol=1e-12)


def test_the_ceiling_matches_the_noise_level():
    """Signal variance 1, noise variance 1, 4 trials: CC_max = sqrt(1 / (1 + 1/4)); the true signal reaches it."""
    rng = np.random.default_rng(6)
    signals = [rng.normal(size=(2000, 3)) for _ in range(4)]
    recordings = [s + rng.normal(size=(4, *s.shape)) for s in signals]
    table = correlations(signals, recordings)
    np.testing.assert_allclose(table["cc_max"], np.sqrt(1 / 1.25), atol=0.02)
    np.testing.assert_allclose(table["cc_norm"], 1.0, atol=0.03)


def test_no_signal_or_constant_series_give_nan_without_warnings():
    rng = np.random.default_rng(7)
    predictions, recordings = _videos(rng, [3, 3], [20, 20], 4)
    for recording in recordings:
        recording[:, :, 0] = rng.normal(size=(3, 20))
        recording[:, :, 0] -= recording[:, :, 0].mean(axis=0)  # trial mean 0 everywhere: P = 0 < TP
        recording[:, :, 1] = 0.7  # constant recording
    predictions[0][:, 2], predictions[1][:, 2] = 0.3, 0.3  # constant prediction
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = correlations(predictions, recordings, burn_in_frames=0)
    assert np.isnan(table.loc[0, "cc_max"]) and np.isnan(table.loc[0, "cc_norm"])
    assert table.loc[1].isna().all()
    assert np.isnan(table.loc[2, "cc_abs"]) and np.isfinite(table.loc[2, "cc_max"])
    assert table.loc[3].notna().all()


def test_the_accumulator_streams_videos():
    rng = np.random.default_rng(8)
    predictions, recordings = _videos(rng, [2, 3, 2], [14, 20, 12], 5)
    accumulator = CorrelationAccumulator(burn_in_frames=4)
    for prediction, recording in zip(predictions, recordings):
        accumulator.add(prediction.astype(np.float32), recording.astype(np.float32))
    expected = _expected([p.astype(np.float32) for p in predictions], [r.astype(np.float32) for r in recordings], 4)
    _check(accumulator.table(), expected)


def _bad(name):
    rng = np.random.default_rng(9)
    p, r = _videos(rng, [3, 2], [15, 12], 4)
    cases = {
        "video count": (p[:1], r, "1 predictions for 2 recorded videos"),
        "unit count": (p, [r[0], r[1][:, :, :3]], "recording of video 1 has 3 units, video 0 has 4"),
        "frames": (p, [r[0], r[1][:, :11]], "prediction of video 1 has shape [12, 4]"),
        "per-trial count": ([np.stack([p[0]] * 2), p[1]], r, "one per trial [R, T, U] = [3, 15, 4]"),
        "burn-in": (p, r, "video 1 has 12 frames, not more than burn_in_frames=12"),
        "single trials": (p, [x[:1] for x in r], "needs repeated trials of the same video"),
        "nan prediction": ([p[0], np.where(p[1] > 0, np.nan, p[1])], r, "prediction of video 1 contains NaN"),
        "inf recording": (p, [r[0], np.full_like(r[1], np.inf)], "recording of video 1 contains infinite"),
        "all-nan sample": (p, [np.where(np.arange(15)[None, :, None] == 13, np.nan, r[0]), r[1]],
                           "no recorded value (all NaN) at frame 13, unit 0"),
        "dtype": (p, [r[0].astype(complex), r[1]], "recording of video 0 has dtype complex128"),
        "ndim": (p, [r[0][0], r[1]], "recording of video 0 has shape [15, 4]; expected [R, T, U]"),
        "no videos": ([], [], "no videos given"),
        "one frame": ([p[0][:2]], [r[0][:, :2]], "only 1 frame is left after the burn-in"),
    }
    return cases[name]


@pytest.mark.parametrize("name", ["video count", "unit count", "frames", "per-trial count", "burn-in",
                                  "single trials", "nan prediction", "inf recording", "all-nan sample", "dtype",
                                  "ndim", "no videos", "one frame"])
def test_bad_inputs_are_refused_clearly(name):
    predictions, recordings, message = _bad(name)
    burn_in = {"burn-in": 12, "one frame": 1}.get(name, 0)
    with pytest.raises(AnalysisInputError) as error:
        correlations(predictions, recordings, burn_in_frames=burn_in)
    assert isinstance(error.value, BergRayError) and message in str(error.value), str(error.value)


@pytest.mark.parametrize("burn_in", [-1, True, 2.0, "10"])
def test_burn_in_must_be_a_non_negative_integer(burn_in):
    with pytest.raises(AnalysisInputError, match="burn_in_frames must be an integer >= 0"):
        correlations([np.ones((5, 2))], [np.ones((2, 5, 2))], burn_in_frames=burn_in)
