"""Download fixtures: a generated release, and helpers that lay it out in
S3 like each source (a BERG-layout mirror, a MICrONS-like zip with its files in a nested folder)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from berg_ray.config import METADATA_SUBDIR, RELEASE_SUBDIR, WEIGHTS_SUBDIR
from tests.s3_server import S3Server

SCANS = ("session-8_scan-5", "session-4_scan-7")


@pytest.fixture(scope="session")
def release_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated release (two scans, 24 units each); session-4_scan-7's metadata under BERG's other file name
    (``session4_scan7_metadata.npy``), as found in the wild."""
    from berg_ray.checkpoint.demo import write_demo_release

    root = write_demo_release(tmp_path_factory.mktemp("release"), SCANS, n_units=24, seed=11)
    metadata = root / RELEASE_SUBDIR / METADATA_SUBDIR
    (metadata / "session-4_scan-7_metadata.npy").rename(metadata / "session4_scan7_metadata.npy")
    return root


def release_files(berg_dir: Path) -> dict[str, bytes]:
    """{layout path: bytes} of the release files under a berg_dir (the manifest and dot files excluded)."""
    model = berg_dir / RELEASE_SUBDIR
    return {p.relative_to(model).as_posix(): p.read_bytes() for folder in (WEIGHTS_SUBDIR, METADATA_SUBDIR)
            for p in sorted((model / folder).glob("*")) if p.is_file() and p.name != "manifest.json"}


def upload_mirror(server: S3Server, bucket: str, prefix: str, berg_dir: Path, model_dir: bool = False) -> None:
    """Put the release under ``s3://bucket/prefix`` in the BERG layout (berg_dir root, or the model directory)."""
    client = server.client()
    for path, data in release_files(berg_dir).items():
        key = f"{prefix}{path}" if model_dir else f"{prefix}{RELEASE_SUBDIR}/{path}"
        client.put_object(Bucket=bucket, Key=key, Body=data)


def zip_bytes(berg_dir: Path, folder: str = "foundation_model/v1/weights/", metadata: bool = False) -> bytes:
    """A zip like the MICrONS archive: the weights files in a nested folder (plus metadata if asked)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("foundation_model/README.txt", "weights of the foundation model\n")
        for path, data in release_files(berg_dir).items():
            if path.startswith(WEIGHTS_SUBDIR) or metadata:
                archive.writestr(folder + path.rpartition("/")[2], data)
    return buffer.getvalue()
