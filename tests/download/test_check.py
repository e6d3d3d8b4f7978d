"""``check_loadable``: a release is read as the loader reads it, against the digests it was verified with, before
anything is installed (real files of a generated release; no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from berg_ray.checkpoint.manifest import FileDigest, digest_file
from berg_ray.config import RELEASE_SUBDIR, ScanId
from berg_ray.download.bounds import SizeLimits
from berg_ray.download.check import check_loadable
from berg_ray.download.fetch import VerificationError
from tests.download.conftest import SCANS, release_files

SCAN_IDS = [ScanId.parse(s) for s in SCANS]


def _files(berg_dir: Path) -> tuple[dict[str, Path], dict[str, FileDigest]]:
    files = {p: berg_dir / RELEASE_SUBDIR / p for p in release_files(berg_dir)}
    return files, {p: digest_file(f) for p, f in files.items()}


def test_a_good_release_passes_and_leaves_no_view(release_dir, tmp_path):
    files, digests = _files(release_dir)
    check_loadable(tmp_path, files, digests, SCAN_IDS, SizeLimits(), "src")
    assert not (tmp_path / ".partial" / "verify").exists()


def test_a_file_that_differs_from_its_verified_digest_is_refused(release_dir, tmp_path):
    files, digests = _files(release_dir)
    name = "encoding_models_weights/params_8_5.pt"
    digests[name] = FileDigest(digests[name].size, "0" * 64)
    with pytest.raises(VerificationError, match="src: the release does not load.*params_8_5.pt: sha256"):
        check_loadable(tmp_path, files, digests, SCAN_IDS, SizeLimits(), "src")
    assert not (tmp_path / ".partial" / "verify").exists()


def test_a_missing_file_is_refused(release_dir, tmp_path):
    files, digests = _files(release_dir)
    del files["encoding_models_weights/units.csv"], digests["encoding_models_weights/units.csv"]
    with pytest.raises(VerificationError, match="units.csv: file not found"):
        check_loadable(tmp_path, files, digests, SCAN_IDS, SizeLimits(), "src")


def test_a_container_unpacking_beyond_its_bound_is_refused_before_torch_reads_it(release_dir, tmp_path):
    files, digests = _files(release_dir)
    with pytest.raises(VerificationError, match="params_8_5.pt: its tensors unpack to .* more than the file.s bound"):
        check_loadable(tmp_path, files, digests, SCAN_IDS, SizeLimits(max_file_bytes=1000), "src")
