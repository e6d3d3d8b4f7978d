"""The release manifest (berg_ray.checkpoint.manifest): writing, reading and verifying size + sha256 per file."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from berg_ray.checkpoint.manifest import (FileDigest, digest_file, read_manifest, read_verified, release_files,
                                          verify_release, write_manifest)
from berg_ray.config import MANIFEST_FILE, RELEASE_SUBDIR
from berg_ray.errors import ReleaseFormatError


@pytest.fixture
def root(demo_berg_dir: Path, tmp_path: Path) -> Path:
    """The release root (the parent of encoding_models_weights/ and metadata/) of a private demo release copy."""
    return Path(shutil.copytree(demo_berg_dir, tmp_path / "berg")) / RELEASE_SUBDIR


def test_demo_release_writes_a_manifest_of_every_file(root):
    manifest = read_manifest(root)
    on_disk = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != MANIFEST_FILE)
    assert sorted(manifest) == on_disk and len(on_disk) == 2 + 2 + 2 + 1  # scans.csv, units.csv, core, 2 scans, 2 meta
    for name, entry in manifest.items():
        data = (root / name).read_bytes()
        assert entry == FileDigest(len(data), hashlib.sha256(data).hexdigest())
    assert verify_release(root) == sorted(manifest)


def test_write_manifest_round_trips_given_entries_and_refuses_missing_files(root, tmp_path):
    entries = {name: digest_file(root / name) for name in release_files(root)}
    assert write_manifest(root, entries) == root / MANIFEST_FILE and read_manifest(root) == entries
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no temp file left behind
    with pytest.raises(ReleaseFormatError, match="not-there.pt: listed for the manifest but not a file"):
        write_manifest(root, entries | {"not-there.pt": FileDigest(1, "0" * 64)})


def test_missing_manifest_reads_as_none_and_files_read_unverified(root):
    (root / MANIFEST_FILE).unlink()
    assert read_manifest(root) is None
    assert read_verified(root, "encoding_models_weights/scans.csv") == \
        (root / "encoding_models_weights/scans.csv").read_bytes()


def test_unlisted_file_is_read_unverified(root):
    manifest = read_manifest(root)
    del manifest["encoding_models_weights/params_4_7.pt"]
    write_manifest(root, manifest)
    (root / "encoding_models_weights/params_4_7.pt").write_bytes(b"changed")
    assert read_verified(root, "encoding_models_weights/params_4_7.pt") == b"changed"


def test_verify_release_names_a_damaged_or_missing_file(root):
    (root / "metadata/session-4_scan-7_metadata.npy").write_bytes(b"x")
    with pytest.raises(ReleaseFormatError, match=r"session-4_scan-7_metadata.npy: size 1 bytes.*re-download"):
        verify_release(root)
    (root / "metadata/session-4_scan-7_metadata.npy").unlink()
    with pytest.raises(ReleaseFormatError, match=r"session-4_scan-7_metadata.npy: listed in .*manifest.json but "
                                                 r"missing"):
        verify_release(root)


@pytest.mark.parametrize("content, message", [
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    (json.dumps({"format": "other", "version": 1, "files": {}}).encode(), "not a berg-ray manifest"),
    (json.dumps({"format": "berg-ray-manifest", "version": 99, "files": {}}).encode(), "version 99"),
    (json.dumps({"format": "berg-ray-manifest", "version": 1, "algorithm": "sha256",
                 "files": {"../../etc/passwd": {"size": 1, "sha256": "0" * 64}}}).encode(), "'../../etc/passwd'"),
    (json.dumps({"format": "berg-ray-manifest", "version": 1, "algorithm": "sha256",
                 "files": {"scans.csv": {"size": -1, "sha256": "xyz"}}}).encode(), "'scans.csv'"),
])
def test_corrupt_manifest_is_refused(root, content, message):
    (root / MANIFEST_FILE).write_bytes(content)
    with pytest.raises(ReleaseFormatError, match=rf"{MANIFEST_FILE}: .*{message}"):
        read_manifest(root)
