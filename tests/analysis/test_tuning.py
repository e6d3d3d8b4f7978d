"""direction_tuning on synthetic von Mises curves with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from berg_ray.analysis.tuning import direction_tuning
from berg_ray.errors import AnalysisInputError


def bessel_i(order: int, x: float) -> float:
    """Modified Bessel function of the first kind, from its power series."""
    return sum((x / 2) ** (2 * k + order) / (math.factorial(k) * math.factorial(k + order)) for k in range(40))


def von_mises(theta_deg: np.ndarray, mu_deg: float, kappa: float) -> np.ndarray:
    """exp(kappa (cos(theta - mu) - 1)): 1 at mu."""
    return np.exp(kappa * (np.cos(np.radians(theta_deg - mu_deg)) - 1))


def curve(theta: np.ndarray, mu: float, kappa: float, base: float, amp: float, amp_null: float) -> np.ndarray:
    """Baseline + a peak at mu + a second peak at mu + 180 (amp_null = amp: orientation- not direction-selective)."""
    return base + amp * von_mises(theta, mu, kappa) + amp_null * von_mises(theta, mu + 180, kappa)


def analytic(mu: float, kappa: float, base: float, amp: float, amp_null: float) -> dict[str, float]:
    """Exact indices of the continuous curve (the sampled sums equal the integrals: aliasing is below 1e-9)."""
    at = lambda angle: float(curve(np.array([angle]), mu, kappa, base, amp, amp_null)[0])  # noqa: E731
    r_pref, r_null, r_orth = at(mu), at(mu + 180), 0.5 * (at(mu + 90) + at(mu - 90))
    scale = math.exp(-kappa)
    mean = base + (amp + amp_null) * scale * bessel_i(0, kappa)
    first = (amp - amp_null) * scale * bessel_i(1, kappa)
    second = (amp + amp_null) * scale * bessel_i(2, kappa)
    return {"pref_dir": mu % 360, "pref_ori": mu % 180, "OSI": (r_pref - r_orth) / (r_pref + r_orth),
            "DSI": (r_pref - r_null) / (r_pref + r_null), "gOSI": second / mean, "gDSI": abs(first) / mean}


DIRECTIONS = np.arange(16) * 22.5
CASES = [  # mu on a sampled direction: every index is exact
    (45.0, 2.0, 0.1, 1.0, 0.0), (270.0, 3.0, 0.5, 2.0, 0.5), (337.5, 1.0, 0.0, 1.0, 0.3),
    (90.0, 2.5, 0.2, 1.0, 1.0),  # bimodal: orientation-selective, DSI = gDSI = 0
]


@pytest.mark.parametrize("mu, kappa, base, amp, amp_null", CASES)
def test_indices_on_sampled_peaks_are_exact(mu: float, kappa: float, base: float, amp: float,
                                            amp_null: float) -> None:
    responses = curve(DIRECTIONS, mu, kappa, base, amp, amp_null)[:, None]
    result = direction_tuning(responses, DIRECTIONS).iloc[0]
    expected = analytic(mu, kappa, base, amp, amp_null)
    if amp_null == amp:  # two equal peaks: either is the preferred direction
        result["pref_dir"] %= 180
        expected["pref_dir"] %= 180
    for name, value in expected.items():
        assert result[name] == pytest.approx(value, abs=1e-9), name


def test_bimodal_curve_is_orientation_not_direction_selective() -> None:
    responses = curve(DIRECTIONS, 112.5, 2.0, 0.1, 1.0, 1.0)[:, None]
    result = direction_tuning(responses, DIRECTIONS).iloc[0]
    assert result["pref_ori"] == pytest.approx(112.5)
    assert result["pref_dir"] in (pytest.approx(112.5), pytest.approx(292.5))
    assert result["DSI"] == pytest.approx(0, abs=1e-12) and result["gDSI"] == pytest.approx(0, abs=1e-12)
    expected = analytic(112.5, 2.0, 0.1, 1.0, 1.0)
    assert result["OSI"] == pytest.approx(expected["OSI"]) and result["gOSI"] == pytest.approx(expected["gOSI"])
    assert expected["OSI"] > 0.5 and expected["gOSI"] > 0.25  # clearly orientation-selective


@pytest.mark.parametrize("mu", [10.0, 100.0, 200.0, 351.0])
def test_peak_between_samples_is_interpolated(mu: float) -> None:
    responses = curve(DIRECTIONS, mu, 2.0, 0.1, 1.0, 0.2)[:, None]
    result = direction_tuning(responses, DIRECTIONS).iloc[0]
    error = (result["pref_dir"] - mu + 180) % 360 - 180
    assert abs(error) < 1.5  # the nearest sample would be up to 11.25 deg away
    expected = analytic(mu, 2.0, 0.1, 1.0, 0.2)
    assert result["gOSI"] == pytest.approx(expected["gOSI"], abs=1e-9)
    assert result["gDSI"] == pytest.approx(expected["gDSI"], abs=1e-9)
    assert result["OSI"] == pytest.approx(expected["OSI"], abs=0.03)  # linear interpolation between samples
    assert result["DSI"] == pytest.approx(expected["DSI"], abs=0.03)


def test_many_units_any_order_and_offset() -> None:
    rng = np.random.default_rng(0)
    directions = (np.arange(8) * 45.0 + 15.0)
    permutation = rng.permutation(8)
    mus = np.array([15.0, 105.0, 240.0])
    responses = np.stack([curve(directions, mu, 2.0, 0.2, 1.0, 0.0) for mu in mus], axis=1)
    result = direction_tuning(responses[permutation], directions[permutation])
    assert list(result.columns) == ["pref_dir", "pref_ori", "OSI", "DSI", "gOSI", "gDSI"]
    np.testing.assert_allclose(result["pref_dir"], mus, atol=1e-9)
    np.testing.assert_allclose(result["pref_ori"], mus % 180, atol=1e-9)
    assert ((result[["OSI", "DSI", "gOSI", "gDSI"]] >= 0) & (result[["OSI", "DSI", "gOSI", "gDSI"]] <= 1)).all().all()


def test_flat_and_silent_units() -> None:
    responses = np.stack([np.full(8, 2.0), np.zeros(8)], axis=1)
    result = direction_tuning(responses, np.arange(8) * 45.0)
    assert result.loc[0, ["OSI", "DSI", "gOSI", "gDSI"]].tolist() == pytest.approx([0, 0, 0, 0], abs=1e-12)
    assert result.loc[1, ["OSI", "DSI", "gOSI", "gDSI"]].isna().all()


@pytest.mark.parametrize("responses, directions, word", [
    (np.ones((8, 2)), np.arange(8) * 40.0, "uniformly spaced"),
    (np.ones((8, 2)), np.array([0, 45, 45, 135, 180, 225, 270, 315.0]), "uniformly spaced"),
    (np.ones((3, 2)), np.arange(3) * 120.0, ">= 4"),
    (np.ones((8,)), np.arange(8) * 45.0, "reshape"),
    (-np.ones((8, 2)), np.arange(8) * 45.0, "non-negative"),
    (np.full((8, 2), np.nan), np.arange(8) * 45.0, "finite"),
])
def test_bad_inputs_raise_clear_errors(responses: np.ndarray, directions: np.ndarray, word: str) -> None:
    with pytest.raises(AnalysisInputError, match=word):
        direction_tuning(responses, directions)
