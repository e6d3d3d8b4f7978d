"""Size bounds of release files: derived from their content, generous enough for the released sizes, stated in
the docs (Getting started), overridable with checked sizes."""

from __future__ import annotations

from pathlib import Path

import pytest

from berg_ray.config import RELEASE_SUBDIR
from berg_ray.download.bounds import SizeLimits, check_sizes, file_bound, parse_size, total_bound
from berg_ray.download.fetch import VerificationError
from berg_ray.errors import BergRayError
from tests.download.conftest import release_files

REPO_ROOT = Path(__file__).resolve().parents[2]
CORE = "encoding_models_weights/params_core.pt"


def test_release_files_at_their_released_size_fit_their_bounds_with_the_documented_margin(tmp_path):
    from berg_ray.checkpoint.demo import write_demo_release

    root = write_demo_release(tmp_path / "r", ["session-8_scan-5", "session-9_scan-6"], n_units=None)
    files = release_files(root)
    assert len(files) == 7
    for path, data in files.items():
        assert len(data) <= file_bound(path), path
        if not path.endswith(".csv"):  # the CSVs' bounds cover all 13 scans; the others are tight, not loose
            assert file_bound(path) <= 3 * len(data) + 1024 ** 2 + 16 * 1024, path
    check_sizes({p: len(d) for p, d in files.items()}, SizeLimits(), "demo")
    assert sum(len(d) for d in files.values()) < total_bound()
    assert (root / RELEASE_SUBDIR / "manifest.json").is_file()


def test_the_docs_state_the_derived_bounds():
    readme = (REPO_ROOT / "docs" / "getting-started.md").read_text()
    scans = [file_bound(f"encoding_models_weights/params_{s}_{c}.pt") for s, c in ((9, 6), (8, 5))]
    assert f"{file_bound(CORE) / 1e6:.1f} MB for `params_core.pt`" in readme
    assert f"{scans[0] / 1e6:.1f}-{scans[1] / 1e6:.1f} MB for a" in readme
    assert f"{total_bound() / 1e6:.1f} MB for the whole release" in readme


def test_overrides_replace_the_derived_bounds():
    assert SizeLimits(max_file_bytes=10).file_bound(CORE) == 10
    assert SizeLimits().file_bound(CORE) == file_bound(CORE)
    with pytest.raises(VerificationError, match="more than 10 .--max-file-bytes"):
        check_sizes({CORE: 11}, SizeLimits(max_file_bytes=10), "s3://b/x/")
    with pytest.raises(VerificationError, match="together are 30 bytes, more than 25 .--max-total-bytes"):
        check_sizes({CORE: 15, "encoding_models_weights/scans.csv": 15}, SizeLimits(max_total_bytes=25), "x")
    with pytest.raises(KeyError):
        file_bound("encoding_models_weights/README.txt")


@pytest.mark.parametrize("text, expected", [("123", 123), ("64MiB", 64 * 1024 ** 2), ("2GB", 2 * 10 ** 9),
                                            (" 1 KiB ", 1024), (None, None)])
def test_sizes_parse(text, expected):
    assert parse_size(text, "--max-file-bytes") == expected


@pytest.mark.parametrize("text", ["0", "-5", "1.5GB", "many", "12 parsecs", "\u0665\u0660", ""])
def test_bad_sizes_are_refused_with_the_fix(text):
    with pytest.raises(BergRayError, match="--max-file-bytes .* not a positive size in bytes; write e.g."):
        parse_size(text, "--max-file-bytes")
