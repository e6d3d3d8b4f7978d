"""Both metadata file names seen in the wild are read (BERG's writer and reader disagree)."""

from __future__ import annotations

from berg_ray.checkpoint.release import metadata_path, read_scan_units
from berg_ray.config import METADATA_SUBDIR, RELEASE_SUBDIR, ScanId


def test_metadata_is_read_under_either_name_canonical_first(tmp_path):
    from berg_ray.checkpoint.demo import write_demo_release

    root = write_demo_release(tmp_path, ["session-8_scan-5"], n_units=8, seed=1)
    folder = root / RELEASE_SUBDIR / METADATA_SUBDIR
    scan = ScanId.parse("session-8_scan-5")
    expected = read_scan_units(root, scan).metadata["calcium_2p"]["unit_id"]
    (folder / "session-8_scan-5_metadata.npy").rename(folder / "session8_scan5_metadata.npy")
    assert metadata_path(root, scan) == folder / "session8_scan5_metadata.npy"
    assert (read_scan_units(root, scan).metadata["calcium_2p"]["unit_id"] == expected).all()
    (folder / "session-8_scan-5_metadata.npy").write_bytes(b"")
    assert metadata_path(root, scan) == folder / "session-8_scan-5_metadata.npy"  # the canonical name wins
    (folder / "session-8_scan-5_metadata.npy").unlink()
    (folder / "session8_scan5_metadata.npy").unlink()
    assert metadata_path(root, scan) == folder / "session-8_scan-5_metadata.npy"  # errors name the canonical one
