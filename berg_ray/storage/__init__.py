"""Local directories and ``s3://bucket/prefix/`` locations behind one small interface.

A :class:`Store` lists files (name relative to its root, size, version), reads whole files, checks access before
any compute starts, and publishes files atomically: a file is written completely to a temporary place first, then
made visible in one step (local: ``os.replace`` from ``<root>/_tmp/``; S3: one PUT, or a multipart upload that
becomes visible only when completed). Readers therefore never see a partially written file.

Small control objects (the sweep lease) use conditional writes instead: create-if-absent and replace- or
delete-if-unchanged (local: ``O_CREAT | O_EXCL`` and a version check under an ``flock`` on
``<root>/_berg_ray.lock``, which the kernel releases if the process dies; S3: ``If-None-Match`` / ``If-Match``).
The interface is :mod:`berg_ray.storage.base`, local directories :mod:`berg_ray.storage.local`, S3
:mod:`berg_ray.storage.s3`; their names are importable from here. Every failure becomes a
:class:`~berg_ray.errors.StorageError` naming the URI and the fix.
"""

from __future__ import annotations

from pathlib import Path

from berg_ray.errors import StorageError
from berg_ray.storage.base import LOCK_FILE, TMP_DIR, FileInfo, LinkProblem, Store
from berg_ray.storage.local import LocalStore
from berg_ray.storage.s3 import S3Options, S3Store, check_bucket, resolve_s3_options, s3_options_for

__all__ = ["LOCK_FILE", "TMP_DIR", "FileInfo", "LinkProblem", "LocalStore", "S3Options", "S3Store", "Store",
           "check_bucket", "open_store", "resolve_s3_options", "s3_options_for"]


def open_store(uri: str, s3: "S3Options | None" = None, follow_symlinks: bool = False) -> Store:
    """The store for a local path (or ``file://``) or an ``s3://bucket/prefix`` URI.

    ``follow_symlinks``: a local store also lists and reads through symbolic links that lead outside its root
    (S3 has no links).
    """
    if not isinstance(uri, str) or not uri.strip():
        raise StorageError(f"location {uri!r} is empty; give a local directory or s3://bucket/prefix/")
    uri = uri.strip()
    if uri.startswith("s3://"):
        bucket, _, prefix = uri[len("s3://"):].partition("/")
        if not bucket:
            raise StorageError(f"{uri!r} names no bucket; use s3://bucket/prefix/")
        check_bucket(bucket, uri)
        return S3Store(bucket, prefix, s3 or S3Options())
    if "://" in uri and not uri.startswith("file://"):
        raise StorageError(f"unsupported location {uri!r}; use a local directory, file:// or s3://bucket/prefix/")
    return LocalStore(Path(uri.removeprefix("file://")).expanduser().resolve(), follow_symlinks)
