"""``berg-ray download`` against SeaweedFS holding a generated release laid out like each source."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from berg_ray.cli import main
from berg_ray.config import RELEASE_SUBDIR, WEIGHTS_SUBDIR
from berg_ray.download import download_release, parse_source
from berg_ray.download.fetch import VerificationError, fetch, head_object, s3_client
from berg_ray.download.files import parse_sessions
from tests.download.conftest import SCANS, release_files, upload_mirror, zip_bytes

pytestmark = pytest.mark.slow


def _installed(berg_dir: Path) -> dict[str, bytes]:
    return release_files(berg_dir) if (berg_dir / RELEASE_SUBDIR).is_dir() else {}


def _assert_usable(berg_dir: Path) -> None:
    from berg_ray import BERG

    berg = BERG(berg_dir)
    for scan in SCANS:  # session-4_scan-7's metadata has the other name: both are read
        assert berg.get_model_metadata("calcium_2p-wang_2025-3DCNN", scan)["calcium_2p"]["unit_id"].shape == (24,)


def test_mirror_download_equals_the_source_byte_for_byte(s3_env, release_dir, tmp_path, capsys):
    bucket = s3_env.new_bucket()
    upload_mirror(s3_env, bucket, "mirror/", release_dir)
    target = tmp_path / "berg"
    assert main(["download", "--out", str(target), "--source", f"s3://{bucket}/mirror/",
                 "--s3-endpoint-url", s3_env.endpoint]) == 0
    assert _installed(target) == release_files(release_dir)
    out = capsys.readouterr()
    assert "installed: 7 files" in out.out and "MD5 of 7 fetched files" in out.out and "MB/s" in out.err + out.out
    assert "B/s" in out.err  # the progress bar shows the rate
    document = json.loads((target / RELEASE_SUBDIR / "manifest.json").read_text())
    assert (document["format"], document["version"], document["algorithm"]) == ("berg-ray-manifest", 1, "sha256")
    manifest = document["files"]
    assert set(manifest) == set(release_files(release_dir))
    for name, data in release_files(release_dir).items():
        assert manifest[name] == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert not (target / ".partial").exists()
    _assert_usable(target)

    assert main(["download", "--out", str(target), "--source", f"s3://{bucket}/mirror/"]) == 0  # again: no GET
    assert "installed: 0 files" in capsys.readouterr().out


def test_mirror_of_the_model_directory_and_a_session_subset(s3_env, release_dir, tmp_path):
    bucket = s3_env.new_bucket()
    upload_mirror(s3_env, bucket, "", release_dir, model_dir=True)  # like BERG's bucket: the model directory
    result = download_release(parse_source(f"s3://{bucket}"), tmp_path / "b", parse_sessions("session4_scan7"),
                              show_progress=False)
    expected = {k: v for k, v in release_files(release_dir).items() if "8_5" not in k and "8_scan5" not in k
                and "8_scan-5" not in k}
    assert _installed(tmp_path / "b") == expected and result.scans == ["session-4_scan-7"]


def test_interrupted_mirror_download_resumes_where_it_stopped(s3_env, release_dir, tmp_path):
    bucket = s3_env.new_bucket()
    upload_mirror(s3_env, bucket, "m/", release_dir)
    source = parse_source(f"s3://{bucket}/m/")
    core = f"{RELEASE_SUBDIR}/{WEIGHTS_SUBDIR}/params_core.pt"
    client = s3_client(source.options)
    remote = head_object(client, bucket, f"m/{core}", source.options)
    remote = type(remote)(f"{WEIGHTS_SUBDIR}/params_core.pt", remote.size, remote.etag)
    staged = tmp_path / "b" / ".partial" / WEIGHTS_SUBDIR / "params_core.pt"

    def interrupt(_: int) -> None:
        raise KeyboardInterrupt  # the user pressed Ctrl-C after the first piece arrived

    with pytest.raises(KeyboardInterrupt):
        fetch(client, bucket, remote, f"m/{RELEASE_SUBDIR}/", staged, source.options, interrupt)
    done = staged.stat().st_size
    assert 0 < done < remote.size and not (tmp_path / "b" / RELEASE_SUBDIR).exists()  # nothing installed yet

    result = download_release(source, tmp_path / "b", show_progress=False)
    total = sum(len(v) for v in release_files(release_dir).values())
    assert result.resumed == done and result.fetched == total - done
    assert _installed(tmp_path / "b") == release_files(release_dir)


def test_partial_file_of_a_changed_object_is_fetched_anew(s3_env, release_dir, tmp_path):
    bucket = s3_env.new_bucket()
    upload_mirror(s3_env, bucket, "m/", release_dir)
    staged = tmp_path / "b" / ".partial" / WEIGHTS_SUBDIR / "scans.csv"
    staged.parent.mkdir(parents=True)
    staged.write_bytes(b"session,scan_idx,units\n9,9,1")  # left by an older version of the file
    staged.with_name("scans.csv.source").write_text(json.dumps({"uri": "x", "etag": "0" * 32, "size": 99}))
    result = download_release(parse_source(f"s3://{bucket}/m/"), tmp_path / "b", show_progress=False)
    assert result.resumed == 0 and _installed(tmp_path / "b") == release_files(release_dir)


def test_corrupted_file_is_refused_and_nothing_is_installed(s3_env, release_dir, tmp_path, capsys):
    bucket = s3_env.new_bucket()
    upload_mirror(s3_env, bucket, "m/", release_dir)
    name = f"{WEIGHTS_SUBDIR}/params_8_5.pt"
    good = release_files(release_dir)[name]
    staged = tmp_path / "b" / ".partial" / name  # a complete staged file whose bytes rotted on disk
    staged.parent.mkdir(parents=True)
    staged.write_bytes(good[:100] + bytes([good[100] ^ 0xFF]) + good[101:])
    head = s3_env.client().head_object(Bucket=bucket, Key=f"m/{RELEASE_SUBDIR}/{name}")
    staged.with_name(staged.name + ".source").write_text(json.dumps(
        {"uri": f"s3://{bucket}/m/{RELEASE_SUBDIR}/{name}", "etag": head["ETag"].strip('"'), "size": len(good)}))
    argv = ["download", "--out", str(tmp_path / "b"), "--source", f"s3://{bucket}/m/", "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "MD5" in err and "nothing was installed" in err and "Traceback" not in err
    assert _installed(tmp_path / "b") == {} and not staged.exists()
    assert main(argv) == 0 and _installed(tmp_path / "b") == release_files(release_dir)  # a re-run fetches it anew


def test_archive_download_checks_the_md5_and_unpacks_from_a_nested_folder(s3_env, release_dir, tmp_path, capsys):
    bucket = s3_env.new_bucket()
    upload_mirror(s3_env, bucket, "berg/", release_dir)  # the metadata comes from a mirror, as for microns
    archive = zip_bytes(release_dir)
    s3_env.client().put_object(Bucket=bucket, Key="bossdb/foundation_model_v1.zip", Body=archive)
    md5 = hashlib.md5(archive).hexdigest()
    target = tmp_path / "b"
    argv = ["download", "--out", str(target), "--source", f"s3://{bucket}/bossdb/foundation_model_v1.zip",
            "--md5", md5, "--metadata-source", f"s3://{bucket}/berg/"]
    assert main(argv) == 0
    assert _installed(target) == release_files(release_dir)
    out = capsys.readouterr().out
    assert f"archive MD5 {md5} ok" in out and "CRC-32 of 5 archive members" in out and "MD5 of 2 fetched" in out
    assert not (target / ".partial").exists()  # the verified zip is removed once unpacked
    _assert_usable(target)
    assert main(argv) == 0 and "installed: 0 files" in capsys.readouterr().out  # no second download


def test_archive_holding_metadata_needs_no_metadata_source(s3_env, release_dir, tmp_path):
    bucket = s3_env.new_bucket()
    archive = zip_bytes(release_dir, folder="a/b/c/", metadata=True)
    s3_env.client().put_object(Bucket=bucket, Key="x.zip", Body=archive)  # single-part: the ETag is the MD5
    result = download_release(parse_source(f"s3://{bucket}/x.zip"), tmp_path / "b", show_progress=False)
    assert _installed(tmp_path / "b") == release_files(release_dir)
    assert result.archive_check == f"archive MD5 {hashlib.md5(archive).hexdigest()} ok"


def test_archive_without_metadata_and_no_metadata_source_is_refused(s3_env, release_dir, tmp_path, capsys):
    bucket = s3_env.new_bucket()
    s3_env.client().put_object(Bucket=bucket, Key="w.zip", Body=zip_bytes(release_dir))
    assert main(["download", "--out", str(tmp_path / "b"), "--source", f"s3://{bucket}/w.zip", "--quiet"]) == 2
    assert "pass --metadata-source berg" in capsys.readouterr().err
    assert _installed(tmp_path / "b") == {}


def test_corrupted_archive_is_refused_before_unpacking(s3_env, release_dir, tmp_path, capsys):
    bucket = s3_env.new_bucket()
    archive = bytearray(zip_bytes(release_dir, metadata=True))
    md5 = hashlib.md5(archive).hexdigest()
    archive[len(archive) // 2] ^= 0xFF
    s3_env.client().put_object(Bucket=bucket, Key="bad.zip", Body=bytes(archive))
    argv = ["download", "--out", str(tmp_path / "b"), "--source", f"s3://{bucket}/bad.zip", "--md5", md5, "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"expected {md5}" in err and "nothing was installed" in err
    assert _installed(tmp_path / "b") == {} and not list((tmp_path / "b").rglob("*.zip"))


def test_archive_with_a_corrupt_member_installs_nothing(s3_env, release_dir, tmp_path):
    bucket = s3_env.new_bucket()
    archive = bytearray(zip_bytes(release_dir, metadata=True))
    start = archive.find(b"PK\x03\x04", archive.find(b"units.csv"))  # the member after units.csv: a params file
    archive[start + 200] ^= 0xFF  # inside its compressed data: the zip's checksum (ETag) matches, its CRC does not
    s3_env.client().put_object(Bucket=bucket, Key="crc.zip", Body=bytes(archive))
    with pytest.raises(VerificationError, match="corrupt"):
        download_release(parse_source(f"s3://{bucket}/crc.zip"), tmp_path / "b", show_progress=False)
    assert _installed(tmp_path / "b") == {}


def test_killed_download_process_resumes_with_only_the_rest_fetched(s3_env, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from berg_ray.checkpoint.demo import write_demo_release

    bucket = s3_env.new_bucket()
    full = write_demo_release(tmp_path / "full", ["session-8_scan-5"], n_units=None)  # 9,941 units, as released
    upload_mirror(s3_env, bucket, "m/", full)
    big = release_files(full)[f"{WEIGHTS_SUBDIR}/params_8_5.pt"]  # 21 MB: the kill lands mid-file
    target = tmp_path / "b"
    staged = target / ".partial" / WEIGHTS_SUBDIR / "params_8_5.pt"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    process = subprocess.Popen([sys.executable, "-m", "berg_ray.cli", "download", "--out", str(target), "--source",
                                f"s3://{bucket}/m/", "--quiet"], env=env)
    deadline = time.monotonic() + 120
    while not (staged.is_file() and staged.stat().st_size >= 2 * 1024 * 1024):
        assert process.poll() is None and time.monotonic() < deadline, "the download ended before it was killed"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = staged.stat().st_size
    assert 0 < done < len(big) and not (target / RELEASE_SUBDIR / WEIGHTS_SUBDIR / "params_8_5.pt").exists()
    on_disk = sum(p.stat().st_size for p in (target / ".partial").rglob("*")  # the shared files came first
                  if p.is_file() and not p.name.endswith(".source"))

    result = download_release(parse_source(f"s3://{bucket}/m/"), target, show_progress=False)
    assert result.resumed == on_disk
    assert result.fetched == sum(len(v) for v in _installed(target).values()) - on_disk - sum(
        len(v) for k, v in _installed(target).items() if k in result.present)
    assert _installed(target) == release_files(full)
