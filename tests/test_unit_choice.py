"""--units of the per-unit experiments: parsing and per-scan resolution against a demo release."""

import numpy as np
import pytest

from berg_ray.checkpoint.demo import write_demo_release
from berg_ray.checkpoint.release import read_scan_units
from berg_ray.errors import InvalidSelectionError
from berg_ray.experiments.unit_choice import UnitChoice, choose_units, parse_unit_choice


@pytest.fixture(scope="module")
def units(tmp_path_factory):
    berg = write_demo_release(tmp_path_factory.mktemp("release") / "berg", ["session-8_scan-5"], n_units=12)
    return read_scan_units(berg, "session-8_scan-5")


def test_parse_forms():
    assert parse_unit_choice("all") == UnitChoice("all")
    assert parse_unit_choice(" TOP:3 ") == UnitChoice("top", count=3)
    assert parse_unit_choice("4,0,7-9") == UnitChoice("list", indices=(4, 0, 7, 8, 9))


@pytest.mark.parametrize("value", ["", "top:0", "top:x", "top:", "3,,4", "5-2", "-1", "1,1", "a", "٣"])
def test_parse_refuses(value):
    with pytest.raises(InvalidSelectionError, match="--units"):
        parse_unit_choice(value)


def test_choose(units):
    assert choose_units(parse_unit_choice("all"), units).tolist() == list(range(12))
    assert choose_units(parse_unit_choice("9,2"), units).tolist() == [2, 9]
    scores = units.metadata["encoding_model"]["cc_norm"]
    top = choose_units(parse_unit_choice("top:4"), units)
    assert top.tolist() == np.argsort(-scores, kind="stable")[:4].tolist()
    assert scores[top[0]] == scores.max()
    with pytest.raises(InvalidSelectionError, match="out of range .* 12 units"):
        choose_units(parse_unit_choice("3,12"), units)
