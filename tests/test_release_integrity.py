"""Damaged and hostile release files: checksums, non-finite weights, unit counts, fields, encodings, cycles.

Each test reproduces a case of issue 8 ("Weights and release files" and the release-file tracebacks): before the
fix it loaded silently, allocated gigabytes or raised a raw exception; now it is a ReleaseFormatError naming the
file (and the key or line) and the fix.
"""

from __future__ import annotations

import shutil
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from berg_ray import BERG
from berg_ray.checkpoint.metadata import read_scan_metadata, write_scan_metadata
from berg_ray.checkpoint.release import load_model, metadata_path, read_scan_units, weights_dir
from berg_ray.config import MODEL_ID, ScanId
from berg_ray.errors import ReleaseFormatError

SCAN = ScanId(8, 5)


@pytest.fixture
def release(demo_berg_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the demo release (with the manifest demo-release writes)."""
    return Path(shutil.copytree(demo_berg_dir, tmp_path / "berg"))


@pytest.fixture
def bare_release(release: Path) -> Path:
    """The same release without a manifest, like a hand-copied release or the golden fixture."""
    (release / "encoding_models/modality-calcium_2p/train_dataset-wang_2025/model-3DCNN/manifest.json").unlink(
        missing_ok=True)
    return release


def _xor_bytes(path: Path, offset: int, count: int = 16) -> None:
    data = bytearray(path.read_bytes())
    for i in range(offset, offset + count):
        data[i] ^= 0xA5
    path.write_bytes(bytes(data))


def _tensor_offset(path: Path, key_index: int = 3) -> int:
    """Byte offset of the middle of one stored tensor of a torch zip file (inside a member's data)."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        members = [i for i in archive.infolist() if "/data/" in i.filename and i.file_size >= 64]
        info = members[key_index]
        with open(path, "rb") as file:  # local header: 30 bytes + name + extra, then the stored data
            file.seek(info.header_offset + 26)
            name_len, extra_len = np.frombuffer(file.read(4), dtype="<u2")
        return info.header_offset + 30 + int(name_len) + int(extra_len) + info.file_size // 2


@pytest.mark.parametrize("name", ["params_core.pt", "params_8_5.pt"])
def test_xor_damage_inside_weights_is_refused_without_a_manifest(bare_release, name):
    path = weights_dir(bare_release) / name
    _xor_bytes(path, _tensor_offset(path))
    with pytest.raises(ReleaseFormatError, match=rf"{name}: .*CRC.*re-download"):
        load_model(bare_release, ["session-8_scan-5"])


@pytest.mark.parametrize("relative", [
    "encoding_models_weights/params_core.pt", "encoding_models_weights/params_8_5.pt",
    "encoding_models_weights/scans.csv", "encoding_models_weights/units.csv", "metadata/session-8_scan-5_metadata.npy",
])
def test_any_changed_byte_is_refused_against_the_manifest(release, relative):
    path = release / "encoding_models/modality-calcium_2p/train_dataset-wang_2025/model-3DCNN" / relative
    _xor_bytes(path, path.stat().st_size // 2, count=1)
    berg = BERG(release)
    with pytest.raises(ReleaseFormatError, match=rf"{Path(relative).name}: sha256 .* manifest.*re-download"):
        berg.get_encoding_model(MODEL_ID, train_session="session-8_scan-5", device="cpu")


def test_truncated_file_is_refused_by_size_against_the_manifest(release):
    path = weights_dir(release) / "params_core.pt"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ReleaseFormatError, match=r"params_core.pt: size \d+ bytes, the manifest says \d+"):
        load_model(release, ["session-8_scan-5"])


def test_release_without_manifest_still_loads(bare_release, fixture_berg_dir):
    assert load_model(bare_release, ["session-8_scan-5"]).n_units("session-8_scan-5") == 64
    assert load_model(fixture_berg_dir, ["session-4_scan-7"]).n_units("session-4_scan-7") == 96


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("name, key", [("params_core.pt", "core.recurrent.proj_q.weights.2"),
                                       ("params_8_5.pt", "readout.feature.weights.1")])
def test_non_finite_weight_is_refused_naming_file_and_key(bare_release, name, key, value):
    path = weights_dir(bare_release) / name
    state = torch.load(path, weights_only=True)
    state[key].view(-1)[7] = value
    torch.save(state, path)
    with pytest.raises(ReleaseFormatError, match=rf"{name}: key '{key}' holds 1 NaN or infinite value"):
        load_model(bare_release, ["session-8_scan-5"])


@pytest.mark.parametrize("make, kind", [
    (lambda t: torch.empty(t.shape, device="meta"), "meta"),
    (lambda t: t.to_sparse(), "sparse"),
])
def test_meta_and_sparse_tensors_are_refused(bare_release, make, kind):
    path = weights_dir(bare_release) / "params_8_5.pt"
    state = torch.load(path, weights_only=True)
    state["readout.position.mu"] = make(state["readout.position.mu"])
    torch.save(state, path)
    with pytest.raises(ReleaseFormatError, match=rf"params_8_5.pt: key 'readout.position.mu' is a {kind} tensor"):
        load_model(bare_release, ["session-8_scan-5"])


@pytest.mark.parametrize("units", [400_000_000, 1_000_000_000_000, 10**30])
def test_huge_unit_count_fails_fast_without_allocating(bare_release, units):
    csv_path = weights_dir(bare_release) / "scans.csv"
    csv_path.write_text(csv_path.read_text().replace("8,5,64", f"8,5,{units}"))
    berg = BERG(bare_release)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ReleaseFormatError, match=rf"scans.csv says {units} units for session-8_scan-5.*"
                                                     r"units.csv lists 64"):
            berg.get_encoding_model(MODEL_ID, train_session="session-8_scan-5", device="cpu")
        with pytest.raises(ReleaseFormatError, match=r"readout.position.mu"):
            load_model(bare_release, ["session-8_scan-5"])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 10 and peak < 64 * 1024 * 1024


def _rewrite_metadata(release: Path, change) -> Path:
    path = metadata_path(release, SCAN)
    metadata = read_scan_metadata(path)
    change(metadata)
    with open(path, "wb") as file:
        np.save(file, metadata, allow_pickle=True)
    return path


@pytest.mark.parametrize("scan, extra", [("session-8_scan-5", range(9, 21)), ("session-9_scan-6", [5])])
def test_fields_outside_the_scan_are_refused(tmp_path, scan, extra):
    from berg_ray.checkpoint.demo import write_demo_release

    berg_dir = write_demo_release(tmp_path / "rel", [scan], n_units=16)
    path = metadata_path(berg_dir, ScanId.parse(scan))
    metadata = read_scan_metadata(path)
    n = metadata["calcium_2p"]["unit_id"].shape[0]
    metadata["calcium_2p"]["field_masks"] |= {f"field_{f}": np.zeros(n, np.int64) for f in extra}
    with open(path, "wb") as file:
        np.save(file, metadata, allow_pickle=True)
    allowed = ScanId.parse(scan).fields
    message = rf"{path.name}: .*field_{min(extra)}.*{scan} has fields {allowed[0]}-{allowed[-1]}"
    with pytest.raises(ReleaseFormatError, match=message):
        read_scan_metadata(path)
    (berg_dir / "encoding_models/modality-calcium_2p/train_dataset-wang_2025/model-3DCNN/manifest.json").unlink()
    with pytest.raises(ReleaseFormatError, match=message):
        BERG(berg_dir).get_encoding_model(MODEL_ID, train_session=scan, selection={"field": max(extra)}, device="cpu")


def test_metadata_of_another_scan_is_refused(bare_release):
    def relabel(metadata):
        metadata["calcium_2p"]["scan"] = 7
        metadata["calcium_2p"]["session"] = 4

    _rewrite_metadata(bare_release, relabel)
    with pytest.raises(ReleaseFormatError, match=r"session-8_scan-5_metadata.npy: describes session-4_scan-7"):
        read_scan_units(bare_release, "session-8_scan-5")


def _encode_with_metadata(berg_dir: Path) -> None:
    """The BERG calls that walk the metadata: a selection, then responses with the selected units' metadata."""
    berg = BERG(berg_dir)
    model = berg.get_encoding_model(MODEL_ID, train_session="session-8_scan-5", selection={"roi": "V1"}, device="cpu")
    berg.encode(model, np.zeros((1, 144, 256), np.uint8), return_metadata=True)


@pytest.mark.parametrize("where", ["top", "calcium_2p", "roi"])
def test_self_referencing_metadata_is_refused(bare_release, where):
    def loop(metadata):
        target = {"top": metadata, "calcium_2p": metadata["calcium_2p"], "roi": metadata["calcium_2p"]["roi"]}[where]
        target["again"] = {"inner": target}

    path = _rewrite_metadata(bare_release, loop)
    with pytest.raises(ReleaseFormatError, match=rf"{path.name}: .*contains itself"):
        _encode_with_metadata(bare_release)


def test_deeply_nested_metadata_is_refused(bare_release):
    marker = "DEEP-NESTING-MARKER"
    path = _rewrite_metadata(bare_release, lambda metadata: metadata.__setitem__("extra", marker))
    key = b"\x8c\x01a"  # SHORT_BINUNICODE 'a' (np.save pickles with protocol 4)
    levels = 100_000  # {'a': {'a': ...}}, built by pickle opcodes (pickle.dumps itself would recurse)
    nested = (b"}" + key) * levels + b"}" + b"s" * levels
    pickled = b"\x8c" + bytes([len(marker)]) + marker.encode()
    assert path.read_bytes().count(pickled) == 1
    path.write_bytes(path.read_bytes().replace(pickled, nested))
    with pytest.raises(ReleaseFormatError, match=rf"{path.name}: metadata is nested deeper than"):
        _encode_with_metadata(bare_release)


@pytest.mark.parametrize("name", ["scans.csv", "units.csv"])
@pytest.mark.parametrize("junk", [b"\xff\xfe\x80", b"\xc0\xaf", b"\xe9t\xe9"])
def test_undecodable_csv_is_refused(bare_release, name, junk):
    path = weights_dir(bare_release) / name
    data = path.read_bytes()
    path.write_bytes(data[:40] + junk + data[40:])
    with pytest.raises(ReleaseFormatError, match=rf"{name}: not UTF-8 text \(byte 40: .*re-download"):
        read_scan_units(bare_release, "session-8_scan-5")


def test_demo_release_metadata_still_round_trips(tmp_path):
    from berg_ray.checkpoint.demo import write_demo_release

    berg_dir = write_demo_release(tmp_path / "rel", ["session-9_scan-6"], n_units=8)
    metadata = read_scan_metadata(metadata_path(berg_dir, ScanId(9, 6)))
    assert sorted(metadata["calcium_2p"]["field_masks"]) == [f"field_{f}" for f in range(1, 5)]
    write_scan_metadata(tmp_path / "copy.npy", metadata)
    assert read_scan_units(berg_dir, "session-9_scan-6").fields == (1, 2, 3, 4)
