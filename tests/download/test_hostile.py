"""``berg-ray download`` against hostile or broken sources (SeaweedFS): size bounds, link members, releases that
cannot load. Each is refused with one ``error:`` line, exit 2, and nothing installed or left behind."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import pytest
import torch

from berg_ray.cli import main
from berg_ray.config import RELEASE_SUBDIR, WEIGHTS_SUBDIR
from tests.download.conftest import release_files, upload_mirror, zip_bytes

pytestmark = pytest.mark.slow
CORE = f"{WEIGHTS_SUBDIR}/params_core.pt"


def _installed(berg_dir: Path) -> dict[str, bytes]:
    return release_files(berg_dir) if (berg_dir / RELEASE_SUBDIR).is_dir() else {}


def _zip(files: dict[str, bytes], folder: str = "model/", huge: tuple[str, int] | None = None,
         link: tuple[str, str] | None = None) -> bytes:
    """A zip of ``files`` (layout path -> bytes) by base name; ``huge``: (base name, bytes of zeros) streamed in;
    ``link``: (base name, target) stored as a symbolic-link entry, as ``zip --symlinks`` writes it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in files.items():
            archive.writestr(folder + path.rpartition("/")[2], data)
        if huge is not None:
            info = zipfile.ZipInfo(folder + huge[0])
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as member:
                zeros = bytes(1024 * 1024)
                for _ in range(huge[1] // len(zeros)):
                    member.write(zeros)
        if link is not None:
            info = zipfile.ZipInfo(folder + link[0])
            info.create_system, info.external_attr = 3, (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, link[1])
    return buffer.getvalue()


def _run(tmp_path: Path, source: str, *extra: str) -> list[str]:
    return ["download", "--out", str(tmp_path / "b"), "--source", source, "--quiet", *extra]


def _refused(capsys, *needles: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


def _nothing_left(target: Path) -> None:
    assert _installed(target) == {}
    assert not (target / ".partial").exists() or not [p for p in (target / ".partial").rglob("*") if p.is_file()]


def test_small_zip_with_a_huge_member_is_refused_before_unpacking(s3_env, release_dir, tmp_path, capsys):
    bucket = s3_env.new_bucket()
    files = {k: v for k, v in release_files(release_dir).items() if k != CORE}
    archive = _zip(files, huge=("params_core.pt", 64 * 1024 * 1024))  # 64 MiB of zeros (bound: 28.6 MB) in 64 kB
    assert len(archive) < 1024 * 1024
    s3_env.client().put_object(Bucket=bucket, Key="bomb.zip", Body=archive)
    assert main(_run(tmp_path, f"s3://{bucket}/bomb.zip")) == 2
    _refused(capsys, "params_core.pt", "67108864 bytes", "--max-file-bytes")
    _nothing_left(tmp_path / "b")


def test_mirror_file_larger_than_its_bound_is_refused_before_it_is_fetched(s3_env, release_dir, tmp_path, capsys):
    bucket = s3_env.new_bucket()
    upload_mirror(s3_env, bucket, "m/", release_dir)
    big = bytes(48 * 1024 * 1024)
    s3_env.client().put_object(Bucket=bucket, Key=f"m/{RELEASE_SUBDIR}/{CORE}", Body=big)
    assert main(_run(tmp_path, f"s3://{bucket}/m/")) == 2
    _refused(capsys, "params_core.pt", f"{len(big)} bytes", "--max-file-bytes")
    _nothing_left(tmp_path / "b")


def test_size_bounds_are_overridable_and_checked(s3_env, release_dir, tmp_path, capsys):
    bucket = s3_env.new_bucket()
    upload_mirror(s3_env, bucket, "m/", release_dir)
    source = f"s3://{bucket}/m/"
    assert main(_run(tmp_path, source, "--max-total-bytes", "1000")) == 2
    _refused(capsys, "--max-total-bytes", "1000")
    assert main(_run(tmp_path, source, "--max-file-bytes", "1000")) == 2
    _refused(capsys, "--max-file-bytes", "more than 1000")
    _nothing_left(tmp_path / "b")
    assert main(_run(tmp_path, source, "--max-file-bytes", "many")) == 2
    _refused(capsys, "--max-file-bytes", "many")
    total = sum(len(v) for v in release_files(release_dir).values())
    assert main(_run(tmp_path, source, "--max-total-bytes", str(total), "--max-file-bytes", "64MiB")) == 0
    assert _installed(tmp_path / "b") == release_files(release_dir)


def test_symlink_member_is_refused(s3_env, release_dir, tmp_path, capsys):
    bucket = s3_env.new_bucket()
    files = {k: v for k, v in release_files(release_dir).items() if not k.endswith("units.csv")}
    archive = _zip(files, link=("units.csv", "../../../../etc/passwd"))
    s3_env.client().put_object(Bucket=bucket, Key="link.zip", Body=archive)
    assert main(_run(tmp_path, f"s3://{bucket}/link.zip")) == 2
    _refused(capsys, "units.csv", "symbolic link")
    _nothing_left(tmp_path / "b")


def _without_a_key(data: bytes) -> bytes:
    state = torch.load(io.BytesIO(data), weights_only=True)
    state.pop(sorted(state)[0])
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def test_archive_release_that_cannot_load_installs_nothing(s3_env, release_dir, tmp_path, capsys):
    bucket = s3_env.new_bucket()
    files = release_files(release_dir)
    broken = {**files, f"{WEIGHTS_SUBDIR}/params_8_5.pt": _without_a_key(files[f"{WEIGHTS_SUBDIR}/params_8_5.pt"])}
    s3_env.client().put_object(Bucket=bucket, Key="broken.zip", Body=_zip(broken))
    assert main(_run(tmp_path, f"s3://{bucket}/broken.zip")) == 2
    _refused(capsys, "params_8_5.pt", "missing keys", "nothing was installed")
    _nothing_left(tmp_path / "b")
    s3_env.client().put_object(Bucket=bucket, Key="broken.zip", Body=zip_bytes(release_dir, metadata=True))
    assert main(_run(tmp_path, f"s3://{bucket}/broken.zip")) == 0  # the fixed archive installs
    assert _installed(tmp_path / "b") == files


def test_mirror_release_that_cannot_load_installs_nothing(s3_env, release_dir, tmp_path, capsys):
    bucket = s3_env.new_bucket()
    upload_mirror(s3_env, bucket, "m/", release_dir)
    scans = f"m/{RELEASE_SUBDIR}/{WEIGHTS_SUBDIR}/scans.csv"
    good = release_files(release_dir)[f"{WEIGHTS_SUBDIR}/scans.csv"]
    s3_env.client().put_object(Bucket=bucket, Key=scans, Body=good.replace(b",24", b",25", 1))  # U disagrees
    assert main(_run(tmp_path, f"s3://{bucket}/m/")) == 2
    _refused(capsys, "does not load", "nothing was installed")
    _nothing_left(tmp_path / "b")
    s3_env.client().put_object(Bucket=bucket, Key=scans, Body=good)
    assert main(_run(tmp_path, f"s3://{bucket}/m/")) == 0
    assert _installed(tmp_path / "b") == release_files(release_dir)


def test_archive_with_a_corrupt_member_leaves_nothing_in_staging(s3_env, release_dir, tmp_path, capsys):
    bucket = s3_env.new_bucket()
    archive = bytearray(zip_bytes(release_dir, metadata=True))
    start = archive.find(b"PK\x03\x04", archive.find(b"units.csv"))  # a params member, after others were extracted
    archive[start + 200] ^= 0xFF
    s3_env.client().put_object(Bucket=bucket, Key="crc.zip", Body=bytes(archive))
    assert main(_run(tmp_path, f"s3://{bucket}/crc.zip")) == 2
    _refused(capsys, "corrupt", "nothing was installed")
    _nothing_left(tmp_path / "b")
