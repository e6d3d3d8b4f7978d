"""One S3 object -> one complete, verified local file, resumable across runs.

Bytes go to a staging file with a ``.source`` sidecar naming the object (URI, ETag, size). A later run that finds
the staging file of the same object continues it with ranged GETs (``Range: bytes=N-``); a changed object (other
ETag or size) starts over. Nothing here installs anything: the caller moves verified files into place.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from berg_ray.config import DOWNLOAD_RANGE_BYTES, S3_MAX_ATTEMPTS
from berg_ray.errors import BergRayError, StorageError
from berg_ray.storage import S3Options
from berg_ray.storage import s3 as storage_s3
from berg_ray.storage.s3 import storage_error

_PLAIN_MD5 = re.compile(r"^[0-9a-f]{32}$")
_READ_BYTES = 1024 * 1024


class VerificationError(BergRayError):
    """A downloaded file does not have the expected size or checksum (nothing was installed)."""


@dataclass(frozen=True)
class RemoteFile:
    """One object: key, size in bytes, ETag without quotes."""

    key: str
    size: int
    etag: str

    @property
    def md5(self) -> str | None:
        """The object's MD5 when its ETag is one (single-part upload), else None (multipart ``...-N``)."""
        return self.etag if _PLAIN_MD5.match(self.etag) else None


@dataclass
class Transfer:
    """Bytes moved for one file: fetched now, found in staging from an earlier run, and GET requests made."""

    fetched: int = 0
    resumed: int = 0
    gets: int = 0


def s3_client(options: S3Options):
    """A boto3 S3 client for ``options``; unsigned requests without an endpoint (the public sources) go to AWS
    whatever ``AWS_ENDPOINT_URL`` says."""
    import boto3
    from botocore.config import Config

    client = storage_s3.s3_client(options, S3_MAX_ATTEMPTS)
    if options.anonymous and options.endpoint_url is None:
        config = client.meta.config.merge(Config(ignore_configured_endpoint_urls=True))
        client = boto3.client("s3", region_name=options.region, config=config)
    return client


def list_objects(client, bucket: str, prefix: str, options: S3Options) -> list[RemoteFile]:
    """Every object under ``prefix`` (keys relative to it)."""
    files = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                key = item["Key"][len(prefix):]
                if key and not key.endswith("/"):
                    files.append(RemoteFile(key, int(item["Size"]), item["ETag"].strip('"')))
    except Exception as exc:
        raise storage_error(exc, f"s3://{bucket}/{prefix}", options, "list") from None
    return sorted(files, key=lambda f: f.key)


def head_object(client, bucket: str, key: str, options: S3Options) -> RemoteFile:
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except Exception as exc:
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError) and str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey"):
            raise StorageError(f"s3://{bucket}/{key} does not exist (endpoint {options.endpoint_name}); check "
                               "--source") from None
        raise storage_error(exc, f"s3://{bucket}/{key}", options, "read") from None
    return RemoteFile(key, int(head["ContentLength"]), head["ETag"].strip('"'))


def fetch(client, bucket: str, remote: RemoteFile, prefix: str, staged: Path, options: S3Options,
          on_bytes: Callable[[int], None]) -> Transfer:
    """Complete ``staged`` with the bytes of ``s3://bucket/prefix+remote.key``, continuing an earlier partial file
    of the same object. ``on_bytes(n)`` is called as bytes arrive (progress)."""
    uri = f"s3://{bucket}/{prefix}{remote.key}"
    sidecar = staged.with_name(staged.name + ".source")
    identity = {"uri": uri, "etag": remote.etag, "size": remote.size}
    if staged.exists() and (not sidecar.is_file() or _read_json(sidecar) != identity
                            or staged.stat().st_size > remote.size):
        staged.unlink()  # another object (or an unknown one) left it: start over
    staged.parent.mkdir(parents=True, exist_ok=True)
    sidecar.write_text(json.dumps(identity))
    staged.touch()
    transfer = Transfer(resumed=staged.stat().st_size)
    offset = transfer.resumed
    with open(staged, "ab") as out:
        while offset < remote.size:
            end = min(offset + DOWNLOAD_RANGE_BYTES, remote.size) - 1
            try:
                response = client.get_object(Bucket=bucket, Key=prefix + remote.key, Range=f"bytes={offset}-{end}")
                transfer.gets += 1
                if response["ETag"].strip('"') != remote.etag:
                    raise StorageError(f"{uri} changed while downloading (ETag {remote.etag} -> "
                                       f"{response['ETag'].strip(chr(34))}); run the command again")
                body = response["Body"]
                while chunk := body.read(_READ_BYTES):
                    out.write(chunk)
                    offset += len(chunk)
                    transfer.fetched += len(chunk)
                    on_bytes(len(chunk))
            except StorageError:
                raise
            except Exception as exc:  # partial bytes stay in staging: the next run continues from them
                out.flush()
                raise storage_error(exc, uri, options, "read") from None
            if offset <= end:
                raise StorageError(f"{uri}: the server sent {offset - transfer.resumed} bytes, fewer than asked; "
                                   "run the command again (the download continues)")
    return transfer


def digests(path: Path) -> tuple[str, str]:
    """(md5, sha256) hex digests of a file, in one pass."""
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_READ_BYTES):
            md5.update(chunk)
            sha256.update(chunk)
    return md5.hexdigest(), sha256.hexdigest()


def verify(path: Path, uri: str, size: int, md5: str | None) -> tuple[str, bool]:
    """Check a complete staged file: its size, and its MD5 when one is expected. Returns (sha256, md5 checked).

    Raises:
        VerificationError: size or MD5 differ; the staged file is deleted (the next run fetches it again).
    """
    actual_size = path.stat().st_size
    actual_md5, sha256 = digests(path)
    problem = (f"size {actual_size} bytes, expected {size}" if actual_size != size else
               f"MD5 {actual_md5}, expected {md5}" if md5 is not None and actual_md5 != md5 else None)
    if problem:
        path.unlink()
        path.with_name(path.name + ".source").unlink(missing_ok=True)
        raise VerificationError(f"{uri}: {problem}; the download is corrupt and nothing was installed (run the "
                                "command again to fetch it anew; if it repeats, the source or --md5 is wrong)")
    return sha256, md5 is not None


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
