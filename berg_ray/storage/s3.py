"""``s3://bucket/prefix/`` locations (boto3 for requests, pyarrow for ranged reads): see berg_ray.storage.

S3 uses boto3 with the standard credential chain (env vars, profiles, instance roles), an endpoint override for
S3-compatible stores (``endpoint_url`` or ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``, an http(s) URL) and
unsigned requests for public buckets. Every failure becomes a :class:`~berg_ray.errors.StorageError` naming the
URI, the endpoint and the fix. Conditional writes (``If-None-Match: *``, ``If-Match: ETag``) back the sweep lease;
:meth:`S3Store.check_writable` refuses a store that ignores them.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from berg_ray.config import (S3_CHECK_MAX_ATTEMPTS, S3_CONNECT_TIMEOUT_S, S3_DEFAULT_REGION, S3_MAX_ATTEMPTS,
                             S3_MULTIPART_THRESHOLD_BYTES, S3_READ_TIMEOUT_S)
from berg_ray.errors import StorageError
from berg_ray.storage.base import TMP_DIR, FileInfo, Store

_CONDITION_FAILED = ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")  # a conditional write lost
_REJECTED = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "InvalidClientTokenId")


@dataclass(frozen=True)
class S3Options:
    """How to reach S3; picklable, so Ray tasks and actors rebuild their clients from it.

    Static credentials of the driver (env vars, credential files) are carried along so that workers act as the
    same identity; refreshable ones (instance roles, SSO) are not, and workers resolve their own chain.
    """

    endpoint_url: str | None = None
    region: str = S3_DEFAULT_REGION
    anonymous: bool = False
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)

    @property
    def endpoint_name(self) -> str:
        return self.endpoint_url or "AWS S3"


def resolve_s3_options(endpoint_url: str | None = None, anonymous: bool = False) -> S3Options:
    """S3 options from the arguments, the environment and boto3's credential chain (on the driver)."""
    import boto3
    from botocore.credentials import RefreshableCredentials

    endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
    if endpoint is not None and "@" in endpoint.split("://", 1)[-1].split("/", 1)[0]:
        raise StorageError(f"S3 endpoint {endpoint!r} (--s3-endpoint-url or AWS_ENDPOINT_URL) carries credentials; "
                           "give only scheme, host and port, and the keys as AWS_ACCESS_KEY_ID and "
                           "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)")
    if endpoint is not None and not re.fullmatch(r"https?://[^/\s:@]+(:[0-9]{1,5})?/?", endpoint.strip()):
        host = endpoint.strip().split("://", 1)[-1]
        raise StorageError(f"S3 endpoint {endpoint!r} (--s3-endpoint-url or AWS_ENDPOINT_URL) is not an http(s) URL; "
                           f"give the scheme and host, e.g. http://{host} or https://{host}")
    session = boto3.Session()
    region = session.region_name or S3_DEFAULT_REGION
    if anonymous:
        return S3Options(endpoint, region, anonymous=True)
    credentials = session.get_credentials()
    if credentials is None or isinstance(credentials, RefreshableCredentials):
        return S3Options(endpoint, region)
    frozen = credentials.get_frozen_credentials()
    return S3Options(endpoint, region, False, frozen.access_key, frozen.secret_key, frozen.token)


def check_bucket(bucket: str, uri: str) -> None:
    """Raise StorageError if the bucket of ``uri`` carries credentials (``s3://key:secret@bucket/...``): S3's
    errors would echo the bucket name, secret included."""
    if "@" in bucket or ":" in bucket:
        raise StorageError(f"{uri!r} carries credentials before its bucket name; give only s3://bucket/prefix and "
                           "the keys as AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)")


def s3_options_for(location: str, endpoint_url: str | None = None, anonymous: bool = False) -> S3Options | None:
    """:func:`resolve_s3_options` for an ``s3://`` location; None for any other (a local path needs no credential
    lookup, and ``open_store`` names an unsupported scheme)."""
    return resolve_s3_options(endpoint_url, anonymous) if str(location).startswith("s3://") else None


class S3Store(Store):
    """A prefix of an S3 bucket (or of an S3-compatible store)."""

    def __init__(self, bucket: str, prefix: str, options: S3Options) -> None:
        self.bucket, self.options = bucket, options
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.uri = f"s3://{bucket}/{self.prefix}"
        self._client = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_client": None}  # boto3 clients do not pickle; rebuilt on first use

    @property
    def client(self):
        if self._client is None:
            self._client = s3_client(self.options, S3_MAX_ATTEMPTS)
        return self._client

    def list_files(self, recursive: bool = True) -> list[FileInfo]:
        return self._list(self.client, recursive)

    def _list(self, client, recursive: bool, limit: int | None = None) -> list[FileInfo]:
        kwargs = {"Bucket": self.bucket, "Prefix": self.prefix, **({} if recursive else {"Delimiter": "/"})}
        if limit is not None:
            kwargs["PaginationConfig"] = {"MaxItems": limit}
        infos = []
        try:
            for page in client.get_paginator("list_objects_v2").paginate(**kwargs):
                for item in page.get("Contents", []):
                    name = item["Key"][len(self.prefix):]
                    if name and not name.endswith("/"):
                        infos.append(FileInfo(name, int(item["Size"]), item["ETag"].strip('"')))
        except Exception as exc:
            raise storage_error(exc, self.uri, self.options, "list") from None
        return sorted(infos, key=lambda info: info.name)

    def read_bytes(self, name: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.prefix + name)["Body"].read()
        except Exception as exc:
            raise storage_error(exc, self.uri_of(name), self.options, "read") from None

    def open_read(self, name: str) -> "S3ObjectReader":
        return S3ObjectReader(self, name)

    def staging_path(self, name: str) -> Path:
        staging = Path(tempfile.gettempdir()) / "berg_ray_staging"
        staging.mkdir(parents=True, exist_ok=True)
        return staging / f"{uuid.uuid4().hex}-{Path(name).name}"

    def publish(self, staged: Path, name: str) -> None:
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(multipart_threshold=S3_MULTIPART_THRESHOLD_BYTES)
        try:
            # One PUT below the threshold, else multipart: the object appears only when the upload completes,
            # and boto3 aborts an upload that fails part-way.
            self.client.upload_file(str(staged), self.bucket, self.prefix + name, Config=config)
        except Exception as exc:
            raise storage_error(exc, self.uri_of(name), self.options, "write") from None
        finally:
            staged.unlink(missing_ok=True)

    def arrow_path(self, name: str) -> tuple["object", str]:
        from pyarrow.fs import S3FileSystem

        opts = self.options
        scheme = "http" if (opts.endpoint_url or "").startswith("http://") else "https"
        endpoint = (opts.endpoint_url or "").split("://", 1)[-1] or None
        fs = S3FileSystem(access_key=opts.access_key, secret_key=opts.secret_key, session_token=opts.session_token,
                          anonymous=opts.anonymous, region=opts.region, endpoint_override=endpoint, scheme=scheme,
                          connect_timeout=S3_CONNECT_TIMEOUT_S, request_timeout=S3_READ_TIMEOUT_S)
        return fs, f"{self.bucket}/{self.prefix}{name}"

    def check_readable(self) -> None:
        self._list(s3_client(self.options, S3_CHECK_MAX_ATTEMPTS), recursive=False, limit=1)

    def check_writable(self) -> None:
        """Write, conditionally re-create (must be refused: the lease relies on it) and delete a probe."""
        client = s3_client(self.options, S3_CHECK_MAX_ATTEMPTS)
        key = f"{self.prefix}{TMP_DIR}/.probe-{uuid.uuid4().hex}"
        try:
            client.put_object(Bucket=self.bucket, Key=key, Body=b"", IfNoneMatch="*")
            client.put_object(Bucket=self.bucket, Key=key, Body=b"", IfNoneMatch="*")
            honoured = False
        except Exception as exc:
            if _error_code(exc) not in _CONDITION_FAILED:
                raise storage_error(exc, self.uri, self.options, "write") from None
            honoured = True
        try:
            client.delete_object(Bucket=self.bucket, Key=key)
        except Exception:  # write access is what was checked; a leftover empty probe under _tmp/ is harmless
            pass
        if not honoured:
            raise StorageError(f"{self.options.endpoint_name} ignores conditional writes (PutObject If-None-Match), "
                               f"so two sweeps into {self.uri} could not be kept apart; use a store that supports "
                               f"them (AWS S3, SeaweedFS, MinIO) or a local --out")

    def delete(self, name: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.prefix + name)
        except Exception as exc:
            raise storage_error(exc, self.uri_of(name), self.options, "delete") from None

    def put_if(self, name: str, data: bytes, expected: str | None) -> str | None:
        condition = {"IfNoneMatch": "*"} if expected is None else {"IfMatch": expected}
        try:
            return self.client.put_object(Bucket=self.bucket, Key=self.prefix + name, Body=data, **condition)["ETag"]
        except Exception as exc:
            if _error_code(exc) in _CONDITION_FAILED:
                return None
            raise storage_error(exc, self.uri_of(name), self.options, "write") from None

    def delete_if(self, name: str, expected: str) -> bool:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.prefix + name, IfMatch=expected)
            return True
        except Exception as exc:
            code = _error_code(exc)
            if code in _CONDITION_FAILED:
                return False
            if code not in ("NotImplemented", "InvalidArgument", "InvalidRequest"):
                raise storage_error(exc, self.uri_of(name), self.options, "delete") from None
        # a store without conditional deletes: compare, then delete (while a lease is live only its holder writes it)
        current = self.read_versioned(name)
        if current is None or current[1] != expected:
            return False
        self.delete(name)
        return True

    def read_versioned(self, name: str) -> tuple[bytes, str, float] | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.prefix + name)
        except Exception as exc:
            if _error_code(exc) in ("NoSuchKey", "404"):
                return None
            raise storage_error(exc, self.uri_of(name), self.options, "read") from None
        from email.utils import parsedate_to_datetime

        now = parsedate_to_datetime(response["ResponseMetadata"]["HTTPHeaders"]["date"])  # the store's clock
        return response["Body"].read(), response["ETag"], (now - response["LastModified"]).total_seconds()

    def remove_staging(self) -> int:
        """Delete leftover probes under ``_tmp/`` (S3 outputs stage on the worker's local disk, not here)."""
        staging = S3Store(self.bucket, f"{self.prefix}{TMP_DIR}/", self.options)
        names = [info.name for info in staging.list_files()]
        for name in names:
            staging.delete(name)
        return len(names)


class S3ObjectReader(io.BufferedReader):
    """One object as a seekable binary file (see :class:`_RangedObject`), read in blocks of 256 KiB."""

    def __init__(self, store: S3Store, name: str) -> None:
        super().__init__(_RangedObject(store, name), buffer_size=256 * 1024)


class _RangedObject(io.RawIOBase):
    """Seekable, read-only, unbuffered view of one S3 object.

    Sequential reads stream from one open-ended ranged GET (``Range: bytes=POS-``); a seek elsewhere closes it and
    the next read starts another at the new position. So a header check reads a few kilobytes of a large
    object, and a full read costs one request. The size is learnt from the first response (or a HEAD request
    when seeking from the end first).
    """

    def __init__(self, store: S3Store, name: str) -> None:
        super().__init__()
        self._store, self._name = store, name
        self._pos, self._size = 0, None
        self._body, self._body_pos = None, -1

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos}.get(whence)
        position = (self._object_size() if base is None else base) + offset
        if position < 0:
            raise ValueError(f"negative seek position {position}")
        self._pos = position
        return position

    def readinto(self, buffer) -> int:
        if self._size is not None and self._pos >= self._size:
            return 0
        if self._body is None or self._body_pos != self._pos:
            self._start_body()
            if self._body is None:
                return 0
        data = self._body.read(len(buffer))
        buffer[:len(data)] = data
        self._pos += len(data)
        self._body_pos = self._pos
        return len(data)

    def close(self) -> None:
        self._close_body()
        super().close()

    def _start_body(self) -> None:
        self._close_body()
        store = self._store
        try:
            response = store.client.get_object(Bucket=store.bucket, Key=store.prefix + self._name,
                                               Range=f"bytes={self._pos}-")
        except Exception as exc:
            if _error_code(exc) == "InvalidRange":  # at or past the end
                self._size = self._pos if self._size is None else self._size
                return
            raise storage_error(exc, store.uri_of(self._name), store.options, "read") from None
        total = str(response.get("ContentRange", "")).rpartition("/")[2]
        if total.isdigit():
            self._size = int(total)
        self._body, self._body_pos = response["Body"], self._pos

    def _close_body(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None

    def _object_size(self) -> int:
        if self._size is None:
            store = self._store
            try:
                head = store.client.head_object(Bucket=store.bucket, Key=store.prefix + self._name)
            except Exception as exc:
                raise storage_error(exc, store.uri_of(self._name), store.options, "read") from None
            self._size = int(head["ContentLength"])
        return self._size


def _error_code(exc: Exception) -> str:
    from botocore.exceptions import ClientError

    return str(exc.response.get("Error", {}).get("Code", "")) if isinstance(exc, ClientError) else ""


def s3_client(options: S3Options, max_attempts: int):
    """A boto3 S3 client for ``options`` with ``max_attempts`` standard retries and our timeouts."""
    import boto3
    import botocore
    from botocore.config import Config

    config = Config(connect_timeout=S3_CONNECT_TIMEOUT_S, read_timeout=S3_READ_TIMEOUT_S,
                    retries={"max_attempts": max_attempts, "mode": "standard"},
                    signature_version=botocore.UNSIGNED if options.anonymous else None,
                    s3={"addressing_style": "path"} if options.endpoint_url else None)
    return boto3.client("s3", endpoint_url=options.endpoint_url, region_name=options.region, config=config,
                        aws_access_key_id=options.access_key, aws_secret_access_key=options.secret_key,
                        aws_session_token=options.session_token)


def storage_error(exc: Exception, uri: str, options: S3Options, action: str) -> StorageError:
    """Translate a boto3/botocore failure into a StorageError that names the URI, the endpoint and the fix."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    where = f"{uri} (endpoint {options.endpoint_name})"
    if isinstance(exc, NoCredentialsError):
        return StorageError(f"no AWS credentials found to {action} {where}; set AWS_ACCESS_KEY_ID and "
                            f"AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or pass --anonymous for a public input bucket")
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("NoSuchBucket", "404"):
            return StorageError(f"bucket {uri.split('/')[2]!r} does not exist at {options.endpoint_name}; create "
                                f"it or fix the URI")
        if code == "NoSuchKey":
            return StorageError(f"{where} does not exist (deleted while the sweep ran?)")
        if code in _REJECTED:
            return StorageError(f"{options.endpoint_name} rejected the credentials ({code}) to {action} {uri}; "
                                f"check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)")
        if code in ("AccessDenied", "403", "AllAccessDisabled"):
            return StorageError(f"access denied to {action} {where}; grant list/read (input) or write (output) "
                                f"permission, or pass --anonymous for a public input bucket")
        return StorageError(f"S3 error {code or exc} to {action} {where}: {exc}")
    if isinstance(exc, EndpointConnectionError) or "timeout" in type(exc).__name__.lower():
        return StorageError(f"cannot reach the S3 endpoint {options.endpoint_name} to {action} {uri} ({exc}); check "
                            f"--s3-endpoint-url / AWS_ENDPOINT_URL and the network")
    return StorageError(f"cannot {action} {where}: {type(exc).__name__}: {exc}")
