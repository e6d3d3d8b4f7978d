"""From outputs to analysis (issue 18): load_sweep gives arrays with a time axis and units; units_table the metadata."""

from __future__ import annotations

import numpy as np
import pytest

from berg_ray import BERG
from berg_ray.config import MODEL_ID
from berg_ray.errors import StorageError
from berg_ray.outputs import UNIT_COLUMNS, load_sweep, units_table
from berg_ray.sweep import run

SCANS = ("session-8_scan-5", "session-4_scan-7")


@pytest.fixture(scope="module")
def swept(ray_cluster, fixture_berg_dir, fixture_stimuli, tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    (root / "in" / "clips").mkdir(parents=True)
    for i in range(2):
        np.save(root / "in" / "clips" / f"v{i}.npy", fixture_stimuli[i, :12])
    np.savez(root / "in" / "moving.npz", stimulus=fixture_stimuli[2, :12],
             modulations=np.ones((12, 2), np.float32))
    result = run(berg_dir=str(fixture_berg_dir), input=str(root / "in"), output=str(root / "out"),
                 sessions=list(SCANS), skip_frames=3, device="cpu", num_workers=1)
    assert result.ok
    return root / "out"


def test_load_sweep_responses_times_and_units(swept, fixture_berg_dir, fixture_stimuli):
    out = load_sweep(str(swept))
    assert out.stimuli == ["clips/v0", "clips/v1", "moving"] and out.scans == sorted(SCANS)
    assert out.skip_frames == 3 and out.reduce == "none"
    berg = BERG(fixture_berg_dir)
    for scan in SCANS:
        model = berg.get_encoding_model(MODEL_ID, scan, device="cpu")
        expected = berg.encode(model, fixture_stimuli[0, :12])[3:]  # skip_frames applied
        np.testing.assert_allclose(out.responses[("clips/v0", scan)], expected, rtol=1e-5)
        times = out.times_s("clips/v0", scan)
        assert times.shape == (9,) and times[0] == pytest.approx(0.1) and np.allclose(np.diff(times), 1 / 30)
        units = out.units[scan]
        table = units_table(str(fixture_berg_dir), scan)
        assert list(units.index) == list(range(expected.shape[1]))
        assert (units["unit_id"].to_numpy() == table["unit_id"].to_numpy()).all()
        assert (units["area"].to_numpy() == table["area"].to_numpy()).all()
        frame = out.frame("clips/v0", scan)
        assert frame.shape == expected.shape and frame.index[0] == pytest.approx(0.1)
        assert list(frame.columns) == list(table["unit_id"])
    assert out.behaviour_given[("moving", SCANS[0])] == (False, True)
    assert out.behaviour_given[("clips/v1", SCANS[0])] == (False, False)
    only = load_sweep(str(swept), scans=["session8_scan5"], stimuli=["moving"])
    assert list(only.responses) == [("moving", "session-8_scan-5")]


def test_units_table_documents_every_column(fixture_berg_dir):
    table = units_table(str(fixture_berg_dir), "session-8_scan-5")
    assert table.index.name == "readout_index" and list(table.index) == list(range(320))
    assert set(table.columns) <= set(UNIT_COLUMNS) and {"unit_id", "area", "field", "cc_norm"} <= set(table.columns)
    assert (table["readout_id"].to_numpy() == np.arange(320)).all()
    assert set(table["area"]) <= {"V1", "LM", "AL", "RL", ""}


def test_load_sweep_refuses_a_directory_that_is_not_a_sweep(tmp_path):
    with pytest.raises(StorageError, match="is not a sweep output"):
        load_sweep(str(tmp_path))
