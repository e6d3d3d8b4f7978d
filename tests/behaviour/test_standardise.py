"""berg_ray.behaviour.standardise: the training pipeline's convention (pupil traces centred and scaled, the
treadmill scaled only), statistics reused across videos, gaps filled, bad traces refused with clear messages."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from berg_ray.behaviour import Behaviour, BehaviourStats, standardise
from berg_ray.errors import InvalidBehaviourError

RNG = np.random.default_rng(7)
T = 40
CENTER = RNG.normal([320.0, 240.0], [6.0, 4.0], (T, 2))  # camera pixels
RADIUS = RNG.normal(25.0, 3.0, T)
TREADMILL = np.abs(RNG.normal(0.0, 5.0, T)) + 1.0  # cm/s, a mouse that always moves forward


def test_pupil_traces_are_centred_and_scaled_the_treadmill_only_scaled():
    behaviour = standardise(CENTER, RADIUS, TREADMILL)
    assert isinstance(behaviour, Behaviour)
    np.testing.assert_allclose(behaviour.perspectives, (CENTER - CENTER.mean(0)) / CENTER.std(0), rtol=1e-6)
    np.testing.assert_allclose(behaviour.modulations[:, 0], (RADIUS - RADIUS.mean()) / RADIUS.std(), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(behaviour.modulations[:, 1], TREADMILL / TREADMILL.std(), rtol=1e-6)
    assert behaviour.modulations[:, 1].min() > 0  # not centred: a moving mouse is never below "stationary"
    assert behaviour.perspectives.dtype == behaviour.modulations.dtype == np.float32
    assert behaviour.perspectives.flags.c_contiguous and behaviour.modulations.shape == (T, 2)
    assert behaviour.stats.treadmill_std == pytest.approx(TREADMILL.std())
    assert behaviour.stats.pupil_center_mean == pytest.approx(tuple(CENTER.mean(0)))
    assert set(behaviour.inputs) == {"perspectives", "modulations"}


def test_stationary_mouse_is_zero_and_stats_carry_over_to_other_videos():
    stats = BehaviourStats.of(pupil_center=[CENTER[:20], CENTER[20:]], pupil_radius=[RADIUS[:20], RADIUS[20:]],
                              treadmill=[TREADMILL[:20], TREADMILL[20:]])
    assert stats == standardise(CENTER, RADIUS, TREADMILL).stats  # per-video lists = the traces joined in time
    still = standardise(pupil_center=np.tile(CENTER.mean(0), (5, 1)), pupil_radius=np.full(5, RADIUS.mean()),
                        treadmill=np.zeros(5), stats=stats)
    np.testing.assert_allclose(still.perspectives, 0, atol=1e-5)
    np.testing.assert_allclose(still.modulations, 0, atol=1e-5)
    restored = BehaviourStats(**json.loads(json.dumps(dataclasses.asdict(stats))))
    assert restored == stats
    np.testing.assert_array_equal(standardise(CENTER, stats=restored).perspectives,
                                  standardise(CENTER, stats=stats).perspectives)


def test_traces_left_out_stay_at_the_default():
    only_treadmill = standardise(treadmill=TREADMILL)
    assert only_treadmill.perspectives is None
    np.testing.assert_array_equal(only_treadmill.modulations[:, 0], 0)
    only_eye = standardise(pupil_center=CENTER)
    assert only_eye.modulations is None and only_eye.stats.treadmill_std is None


def test_nan_gaps_are_filled_by_linear_interpolation():
    radius = np.array([np.nan, 2.0, np.nan, np.nan, 8.0, np.nan])
    filled = np.array([2.0, 2.0, 4.0, 6.0, 8.0, 8.0])  # interpolated inside, held at the ends
    behaviour = standardise(pupil_radius=radius)
    np.testing.assert_allclose(behaviour.modulations[:, 0], (filled - filled.mean()) / filled.std(), rtol=1e-6)
    masked = np.ma.masked_invalid(radius)
    np.testing.assert_array_equal(standardise(pupil_radius=masked).modulations, behaviour.modulations)


@pytest.mark.parametrize("kwargs, message", [
    ({}, "at least one trace"),
    ({"pupil_radius": np.full(T, np.nan)}, "pupil_radius is NaN in every frame"),
    ({"treadmill": np.zeros(T)}, "treadmill is constant (0 in all 40 frames)"),
    ({"pupil_center": np.c_[CENTER[:, 0], np.full(T, 3.0)]}, "pupil_center y is constant"),
    ({"pupil_center": CENTER[:, 0]}, "pupil_center has shape [40]; expected pupil centre x, y per frame, [T, 2]"),
    ({"pupil_radius": RADIUS[:, None]}, "pupil_radius has shape [40, 1]; expected pupil radius per frame, [T]"),
    ({"pupil_radius": RADIUS, "treadmill": TREADMILL[:-1]}, "different lengths"),
    ({"treadmill": np.r_[TREADMILL[:-1], np.inf]}, "treadmill holds infinite values (first at frame 39)"),
    ({"treadmill": TREADMILL.astype(str)}, "treadmill has dtype <U"),
    ({"treadmill": TREADMILL, "stats": BehaviourStats(pupil_radius_mean=1.0, pupil_radius_std=1.0)},
     "stats has no treadmill_std"),
])
def test_bad_traces_are_refused_by_name(kwargs, message):
    with pytest.raises(InvalidBehaviourError) as caught:
        standardise(**kwargs)
    assert message in str(caught.value)


@pytest.mark.parametrize("field, value", [("treadmill_std", 0.0), ("pupil_radius_std", -1.0),
                                          ("pupil_center_mean", (1.0,)), ("pupil_radius_mean", float("nan"))])
def test_bad_stats_are_refused(field, value):
    with pytest.raises(InvalidBehaviourError, match=f"stats {field} is"):
        BehaviourStats(**{field: value})
