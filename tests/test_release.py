"""The strict release reader, the safe metadata reader and the demo-release writer."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from berg_ray.checkpoint.keys import core_key_shapes, scan_key_shapes
from berg_ray.checkpoint.metadata import read_scan_metadata, write_scan_metadata
from berg_ray.checkpoint.release import available_scans, load_model, read_scan_table, read_scan_units, weights_dir
from berg_ray.config import MANIFEST_FILE, RELEASE_SUBDIR, ScanId
from berg_ray.errors import ReleaseFormatError, ScanNotAvailableError, UnsafeMetadataError


@pytest.fixture
def release(demo_berg_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the demo release that a test may damage, without its manifest (like a hand-copied release),
    so the structural checks are reached (tests/test_release_integrity.py covers the manifest)."""
    root = Path(shutil.copytree(demo_berg_dir, tmp_path / "berg"))
    (root / RELEASE_SUBDIR / MANIFEST_FILE).unlink(missing_ok=True)
    return root


def test_key_tables_match_the_published_files(fixture_berg_dir):
    directory = weights_dir(fixture_berg_dir)
    core = torch.load(directory / "params_core.pt", weights_only=True)
    scan = torch.load(directory / "params_8_5.pt", weights_only=True)
    assert len(core_key_shapes()) == 250 and len(scan_key_shapes(320)) == 88
    assert {k: tuple(v.shape) for k, v in core.items()} == core_key_shapes()
    assert {k: tuple(v.shape) for k, v in scan.items()} == scan_key_shapes(320)


def test_scan_table_and_units_read_crlf_files(fixture_berg_dir):
    assert read_scan_table(fixture_berg_dir) == {ScanId(8, 5): 320, ScanId(4, 7): 96}
    units = read_scan_units(fixture_berg_dir, "session-8_scan-5")
    assert units.n_units == 320 and units.unit_id[:2].tolist() == [29, 33]
    assert set(np.unique(units.area)) <= {"V1", "LM", "AL", "RL", ""} and units.fields == tuple(range(1, 9))


def test_demo_release_has_the_release_format_and_loads(demo_berg_dir):
    assert available_scans(demo_berg_dir) == [ScanId(4, 7), ScanId(8, 5)]
    model = load_model(demo_berg_dir, ["session-4_scan-7"])
    assert model.scan_ids == ["session-4_scan-7"] and model.n_units("session-4_scan-7") == 64


def test_missing_core_file_names_the_file(release):
    (weights_dir(release) / "params_core.pt").unlink()
    with pytest.raises(ReleaseFormatError, match="params_core.pt: file not found"):
        load_model(release)


def test_truncated_file_is_reported_as_corrupt(release):
    path = weights_dir(release) / "params_8_5.pt"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(ReleaseFormatError, match=r"params_8_5.pt: cannot be loaded.*corrupt"):
        load_model(release, ["session-8_scan-5"])


@pytest.mark.parametrize("change, message", [
    (lambda s: s.pop("readout.biases.2"), r"missing keys \['readout.biases.2'\]"),
    (lambda s: s.__setitem__("readout.extra", torch.zeros(1)), r"unknown keys \['readout.extra'\]"),
    (lambda s: s.__setitem__("readout.position.mu", torch.zeros(65, 2)), r"'readout.position.mu' is \(65, 2\)"),
    (lambda s: s.__setitem__("perspective.monitor.angle", torch.zeros(3, dtype=torch.float64)), "float64"),
])
def test_bad_scan_file_names_file_and_key(release, change, message):
    path = weights_dir(release) / "params_8_5.pt"
    state = torch.load(path, weights_only=True)
    change(state)
    torch.save(state, path)
    with pytest.raises(ReleaseFormatError, match=message):
        load_model(release, ["session-8_scan-5"])


def test_unit_count_is_checked_against_scans_csv(release):
    csv_path = weights_dir(release) / "scans.csv"
    csv_path.write_text(csv_path.read_text().replace("8,5,64", "8,5,65"))
    with pytest.raises(ReleaseFormatError, match=r"readout.position.mu.*\(65, 2\)"):
        load_model(release, ["session-8_scan-5"])


def test_valid_scan_without_weights(release):
    with pytest.raises(ScanNotAvailableError, match="session-9_scan-6 is a valid scan but is not listed"):
        load_model(release, ["session-9_scan-6"])
    (weights_dir(release) / "params_4_7.pt").unlink()
    with pytest.raises(ScanNotAvailableError, match="params_4_7.pt are not in"):
        load_model(release, ["session-4_scan-7"])


def test_missing_layout_explains_the_expected_directory(tmp_path):
    with pytest.raises(ReleaseFormatError, match="must contain encoding_models/modality-calcium_2p"):
        load_model(tmp_path)


class _Exploit:
    """Unpickling this would run os.system: the restricted reader must refuse before calling anything."""

    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/berg_ray_pwned",))


def test_malicious_metadata_is_refused_without_running_it(tmp_path):
    path = tmp_path / "session-8_scan-5_metadata.npy"
    payload = np.empty((), dtype=object)
    payload[()] = {"calcium_2p": _Exploit()}
    with open(path, "wb") as file:
        np.save(file, payload, allow_pickle=True)
    marker = Path("/tmp/berg_ray_pwned")
    marker.unlink(missing_ok=True)
    with pytest.raises(UnsafeMetadataError, match="refused pickle global (posix|os).system"):
        read_scan_metadata(path)
    assert not marker.exists()


def test_metadata_with_missing_key_is_rejected(tmp_path, fixture_berg_dir):
    source = fixture_berg_dir / "encoding_models/modality-calcium_2p/train_dataset-wang_2025/model-3DCNN/metadata"
    metadata = read_scan_metadata(source / "session-8_scan-5_metadata.npy")
    del metadata["calcium_2p"]["roi"]
    path = tmp_path / "bad.npy"
    with open(path, "wb") as file:
        np.save(file, metadata, allow_pickle=True)
    with pytest.raises(ReleaseFormatError, match="missing required metadata key calcium_2p.'roi'"):
        read_scan_metadata(path)


def test_metadata_in_another_order_is_reordered_to_readout_order(release):
    before = read_scan_units(release, "session-8_scan-5")
    path = release / "encoding_models/modality-calcium_2p/train_dataset-wang_2025/model-3DCNN/metadata" / \
        "session-8_scan-5_metadata.npy"
    order = np.random.default_rng(0).permutation(before.n_units)
    shuffled = read_scan_metadata(path)
    calcium = shuffled["calcium_2p"]
    calcium["unit_id"], calcium["OSI"] = calcium["unit_id"][order], calcium["OSI"][order]
    calcium["roi"] = {k: v[order] for k, v in calcium["roi"].items()}
    calcium["field_masks"] = {k: v[order] for k, v in calcium["field_masks"].items()}
    write_scan_metadata(path, shuffled)
    after = read_scan_units(release, "session-8_scan-5")
    np.testing.assert_array_equal(after.metadata["calcium_2p"]["unit_id"], before.unit_id)
    np.testing.assert_array_equal(after.metadata["calcium_2p"]["OSI"], before.metadata["calcium_2p"]["OSI"])
    np.testing.assert_array_equal(after.area, before.area)
    np.testing.assert_array_equal(after.field, before.field)
