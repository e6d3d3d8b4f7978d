"""Where a release comes from: ``berg``, ``microns`` or an ``s3://`` URI, as a bucket, key(s) and S3 options.

Pure mapping, no network: :func:`parse_source` turns the ``--source`` value into a :class:`MirrorSource` (a prefix
in the BERG layout) or an :class:`ArchiveSource` (one zip). The two public sources are read unsigned from AWS
whatever the environment says (an ``AWS_ENDPOINT_URL`` meant for a private store must not redirect them).
"""

from __future__ import annotations

from dataclasses import dataclass

from berg_ray.config import (BERG_BUCKET, MICRONS_BUCKET, MICRONS_KEY, MICRONS_MD5, RELEASE_SUBDIR,
                             S3_DEFAULT_REGION)
from berg_ray.errors import BergRayError
from berg_ray.storage import S3Options, check_bucket, resolve_s3_options

PUBLIC_SOURCES = ("berg", "microns")


@dataclass(frozen=True)
class MirrorSource:
    """Release files under ``s3://bucket/prefix`` in the BERG layout (the prefix may be the berg_dir root or the
    model directory that holds ``encoding_models_weights/`` and ``metadata/``)."""

    bucket: str
    prefix: str
    options: S3Options

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class ArchiveSource:
    """One zip holding release files in any folder; ``md5``: its expected checksum (None: the ETag's, if plain).
    ``metadata``: where the per-scan metadata comes from when the zip has none (the MICrONS zip has none)."""

    bucket: str
    key: str
    options: S3Options
    md5: str | None = None
    metadata: MirrorSource | None = None

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


Source = MirrorSource | ArchiveSource


def public_options() -> S3Options:
    """Unsigned requests to AWS S3 (no endpoint override, no credentials)."""
    return S3Options(endpoint_url=None, region=S3_DEFAULT_REGION, anonymous=True)


def berg_source() -> MirrorSource:
    """BERG's public bucket, model directory of calcium_2p-wang_2025-3DCNN."""
    return MirrorSource(BERG_BUCKET, RELEASE_SUBDIR + "/", public_options())


def parse_source(spec: str, md5: str | None = None, endpoint_url: str | None = None,
                 metadata_spec: str | None = None) -> Source:
    """The source named by ``--source`` (and ``--md5``, ``--s3-endpoint-url``, ``--metadata-source``).

    Args:
        spec: ``berg``, ``microns``, ``s3://bucket/prefix/`` (mirror) or ``s3://bucket/path/X.zip`` (archive).
        md5: expected MD5 of an archive (hex), overriding the published one.
        endpoint_url: S3-compatible endpoint for ``s3://`` sources (default: AWS_ENDPOINT_URL or AWS).
        metadata_spec: a mirror (``berg`` or ``s3://...``) holding the metadata an archive lacks.
    Raises:
        BergRayError: an unknown source, a malformed URI or checksum, an option that does not apply.
    """
    spec = (spec or "").strip()
    md5 = _check_md5(md5)
    if spec in PUBLIC_SOURCES and endpoint_url:
        raise BergRayError(f"--s3-endpoint-url applies to s3:// sources only; --source {spec} is read from AWS")
    if spec == "berg":
        if md5 or metadata_spec:
            raise BergRayError("--md5 and --metadata-source apply to archive sources (microns, s3://.../X.zip), "
                               "not to --source berg")
        return berg_source()
    metadata = _metadata_mirror(metadata_spec, endpoint_url)
    if spec == "microns":
        return ArchiveSource(MICRONS_BUCKET, MICRONS_KEY, public_options(), md5 or MICRONS_MD5,
                             metadata or berg_source())
    if not spec.startswith("s3://"):
        raise BergRayError(f"--source {spec!r} is not berg, microns or an s3://bucket/prefix/ (or .../X.zip) URI")
    bucket, _, key = spec[len("s3://"):].partition("/")
    if not bucket:
        raise BergRayError(f"--source {spec!r} names no bucket; use s3://bucket/prefix/ or s3://bucket/path/X.zip")
    check_bucket(bucket, spec)
    options = resolve_s3_options(endpoint_url)
    if key.lower().endswith(".zip"):
        return ArchiveSource(bucket, key, options, md5, metadata)
    if md5 or metadata:
        raise BergRayError(f"--md5 and --metadata-source apply to archive sources (.zip), not to the mirror {spec}")
    return MirrorSource(bucket, key if not key or key.endswith("/") else key + "/", options)


def _metadata_mirror(spec: str | None, endpoint_url: str | None) -> MirrorSource | None:
    if spec is None:
        return None
    source = parse_source(spec, endpoint_url=None if spec == "berg" else endpoint_url)
    if not isinstance(source, MirrorSource):
        raise BergRayError(f"--metadata-source {spec!r} must be berg or an s3://bucket/prefix/ mirror, not a zip")
    return source


def _check_md5(md5: str | None) -> str | None:
    if md5 is None:
        return None
    value = md5.strip().lower()
    if len(value) != 32 or any(c not in "0123456789abcdef" for c in value):
        raise BergRayError(f"--md5 {md5!r} is not an MD5 checksum (32 hexadecimal digits)")
    return value
