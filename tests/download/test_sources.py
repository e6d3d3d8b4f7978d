"""``--source`` mapping (no network): the public sources' buckets, keys, checksum and unsigned access."""

from __future__ import annotations

import botocore
import pytest

from berg_ray.config import RELEASE_SUBDIR
from berg_ray.download.files import layout_path, mirror_layout_path, parse_sessions, select
from berg_ray.download.sources import ArchiveSource, MirrorSource, parse_source
from berg_ray.errors import BergRayError
from berg_ray.download.fetch import s3_client


@pytest.fixture(autouse=True)
def _private_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """An environment set up for a private store: the public sources must not follow it."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "private-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "private-secret")


def test_berg_is_the_public_bucket_model_directory_read_unsigned_from_aws():
    source = parse_source("berg")
    assert isinstance(source, MirrorSource)
    assert (source.bucket, source.prefix) == ("brain-encoding-response-generator", RELEASE_SUBDIR + "/")
    assert source.uri == ("s3://brain-encoding-response-generator/encoding_models/modality-calcium_2p/"
                          "train_dataset-wang_2025/model-3DCNN/")
    assert source.options.anonymous and source.options.endpoint_url is None and source.options.access_key is None
    client = s3_client(source.options)
    assert client.meta.config.signature_version is botocore.UNSIGNED
    assert client.meta.endpoint_url.startswith("https://") and "127.0.0.1" not in client.meta.endpoint_url


def test_microns_is_the_bossdb_archive_with_its_md5_and_metadata_from_berg():
    source = parse_source("microns")
    assert isinstance(source, ArchiveSource)
    assert source.uri == ("s3://bossdb-open-data/iarpa_microns/minnie/functional_data/foundation_model/"
                          "foundational_model_weights_and_metadata_v1.zip")
    assert source.md5 == "58fcac4b31ad2902c81e339432cec787"
    assert source.options.anonymous and source.options.endpoint_url is None
    assert s3_client(source.options).meta.config.signature_version is botocore.UNSIGNED
    assert source.metadata == parse_source("berg")
    assert parse_source("microns", md5="0" * 32).md5 == "0" * 32  # --md5 overrides the published checksum


def test_s3_sources_use_the_credential_chain_and_endpoint():
    mirror = parse_source("s3://mirror/releases/wang", endpoint_url="http://127.0.0.1:8333")
    assert isinstance(mirror, MirrorSource) and mirror.prefix == "releases/wang/"
    assert mirror.options.endpoint_url == "http://127.0.0.1:8333" and not mirror.options.anonymous
    assert mirror.options.access_key == "private-key"
    archive = parse_source("s3://mirror/x/weights.ZIP", md5="A" * 32, metadata_spec="s3://mirror/releases/")
    assert isinstance(archive, ArchiveSource) and archive.md5 == "a" * 32 and archive.key == "x/weights.ZIP"
    assert archive.options.endpoint_url == "http://127.0.0.1:9"  # AWS_ENDPOINT_URL when no flag is given
    assert archive.metadata is not None and archive.metadata.prefix == "releases/"


@pytest.mark.parametrize("spec, kwargs, message", [
    ("ftp://host/x", {}, "is not berg, microns or an s3://"),
    ("s3:///x", {}, "names no bucket"),
    ("berg", {"endpoint_url": "http://127.0.0.1:1"}, "--s3-endpoint-url applies to s3:// sources only"),
    ("berg", {"md5": "0" * 32}, "apply to archive sources"),
    ("s3://b/prefix/", {"md5": "0" * 32}, "apply to archive sources"),
    ("microns", {"md5": "xyz"}, "is not an MD5 checksum"),
    ("microns", {"metadata_spec": "s3://b/x.zip"}, "must be berg or an s3://bucket/prefix/ mirror"),
])
def test_bad_sources_are_refused_with_the_fix(spec, kwargs, message):
    with pytest.raises(BergRayError, match=message):
        parse_source(spec, **kwargs)


def test_release_file_names_and_session_selection():
    assert layout_path("params_8_5.pt") == "encoding_models_weights/params_8_5.pt"
    assert layout_path("session8_scan5_metadata.npy") == "metadata/session8_scan5_metadata.npy"
    assert layout_path("session-8_scan-5_metadata.npy") == "metadata/session-8_scan-5_metadata.npy"
    assert layout_path("params_1_1.pt") is None and layout_path("README.md") is None
    assert mirror_layout_path(f"{RELEASE_SUBDIR}/metadata/session-4_scan-7_metadata.npy") is not None
    assert mirror_layout_path("encoding_models_weights/scans.csv") == "encoding_models_weights/scans.csv"
    assert mirror_layout_path("other/encoding_models_weights/scans.csv") is None
    assert mirror_layout_path("metadata/params_8_5.pt") is None
    assert parse_sessions("all") is None and [str(s) for s in parse_sessions("session8_scan5")] == ["session-8_scan-5"]
    shared = [f"encoding_models_weights/{n}" for n in ("params_core.pt", "scans.csv", "units.csv")]
    available = shared + ["encoding_models_weights/params_8_5.pt", "encoding_models_weights/params_4_7.pt",
                          "metadata/session8_scan5_metadata.npy", "metadata/session-4_scan-7_metadata.npy"]
    paths, scans = select(available, parse_sessions("session-8_scan-5"), "src")
    assert paths == shared + ["encoding_models_weights/params_8_5.pt", "metadata/session8_scan5_metadata.npy"]
    assert [str(s) for s in select(available, None, "src")[1]] == ["session-4_scan-7", "session-8_scan-5"]
    with pytest.raises(BergRayError, match="missing encoding_models_weights/params_9_6.pt"):
        select(available, parse_sessions("session-9_scan-6"), "src")
    with pytest.raises(BergRayError, match="missing metadata/session-4_scan-7_metadata.npy, metadata/session-8_scan"):
        select(available[:-2], None, "src")
    with pytest.raises(BergRayError, match="session-1_scan-1"):
        parse_sessions("session-1_scan-1")
