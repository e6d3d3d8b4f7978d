"""Per-unit tuning tables with in vivo values, and their agreement per area."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from berg_ray.analysis.invivo import circular_difference, compare_with_invivo, pearson, tuning_table
from berg_ray.config import ScanId
from berg_ray.errors import AnalysisInputError
from berg_ray.units import ScanUnits


def scan_units(invivo: dict[str, np.ndarray], area: np.ndarray) -> ScanUnits:
    n = area.shape[0]
    return ScanUnits(scan_id=ScanId(8, 5), readout_id=np.arange(n), unit_id=np.arange(n) + 100, area=area,
                     field=np.ones(n, dtype=np.int64), fields=(1,), metadata={"calcium_2p": invivo})


def test_circular_difference_wraps() -> None:
    np.testing.assert_allclose(circular_difference([179.0, 1.0, 90.0], [1.0, 179.0, 0.0], 180.0), [-2.0, 2.0, -90.0])
    np.testing.assert_allclose(circular_difference([350.0, 10.0], [10.0, 190.0], 360.0), [-20.0, -180.0])


def test_table_and_comparison_per_area() -> None:
    rng = np.random.default_rng(0)
    n = 40
    area = np.array(["V1", "LM"] * (n // 2), dtype=object)
    invivo = {"OSI": rng.uniform(0, 1, n), "DSI": rng.uniform(0, 1, n), "gOSI": rng.uniform(0, 1, n),
              "gDSI": rng.uniform(0, 1, n), "pref_ori": rng.uniform(0, 180, n), "pref_dir": rng.uniform(0, 360, n)}
    offset_ori = np.where(area == "V1", 10.0, -30.0)  # V1 off by 10 deg, LM by 30 deg (with wrap-around)
    pref_dir = (invivo["pref_dir"] + offset_ori) % 360
    tuning = pd.DataFrame({"pref_dir": pref_dir, "pref_ori": (invivo["pref_ori"] + offset_ori) % 180,
                           "OSI": 2 * invivo["OSI"] + 0.1, "DSI": -invivo["DSI"], "gOSI": invivo["gOSI"],
                           "gDSI": rng.uniform(0, 1, n)})
    table = tuning_table(scan_units(invivo, area), tuning)
    assert list(table.columns[:6]) == ["session", "scan", "readout_id", "unit_id", "area", "field"]
    assert list(table.columns[6:]) == ["pref_dir", "pref_ori", "OSI", "DSI", "gOSI", "gDSI", "invivo_pref_dir",
                                       "invivo_pref_ori", "invivo_OSI", "invivo_DSI", "invivo_gOSI", "invivo_gDSI"]
    np.testing.assert_array_equal(table["invivo_OSI"], invivo["OSI"])
    summary = compare_with_invivo(table)
    assert list(summary.index) == ["V1", "LM", "all"]
    assert summary.loc["V1", "n_units"] == 20 and summary.loc["all", "n_units"] == 40
    assert summary.loc["V1", "median_dori"] == pytest.approx(10.0)
    assert summary.loc["LM", "median_dori"] == pytest.approx(30.0)
    assert summary.loc["LM", "median_ddir"] == pytest.approx(30.0)
    assert summary.loc["all", "r_OSI"] == pytest.approx(1.0) and summary.loc["all", "r_DSI"] == pytest.approx(-1.0)
    assert summary.loc["V1", "r_gOSI"] == pytest.approx(1.0) and abs(summary.loc["all", "r_gDSI"]) < 0.5


def test_pearson_ignores_nan_and_needs_three_pairs() -> None:
    assert pearson(np.array([1.0, 2.0, np.nan, 3.0]), np.array([2.0, 4.0, 1.0, 6.0])) == pytest.approx(1.0)
    assert np.isnan(pearson(np.array([1.0, 2.0]), np.array([1.0, 2.0])))
    assert np.isnan(pearson(np.ones(5), np.arange(5.0)))


def test_table_rejects_wrong_number_of_units() -> None:
    invivo = {name: np.zeros(3) for name in ("OSI", "DSI", "gOSI", "gDSI", "pref_ori", "pref_dir")}
    with pytest.raises(AnalysisInputError, match="3 units"):
        tuning_table(scan_units(invivo, np.array(["V1"] * 3, dtype=object)), pd.DataFrame({"pref_dir": [0.0]}))
