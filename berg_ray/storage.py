"""Local directories and ``s3://bucket/prefix/`` locations behind one small interface.

A :class:`Store` lists files (name relative to its root, size, version), reads whole files, checks access before
any compute starts, and publishes files atomically: a file is written completely to a temporary place first, then
made visible in one step (local: ``os.replace`` from ``<root>/_tmp/``; S3: one PUT, or a multipart upload that
becomes visible only when completed). Readers therefore never see a partially written file.

Small control objects (the sweep lease) use conditional writes instead: create-if-absent and replace- or
delete-if-unchanged (local: ``O_CREAT | O_EXCL`` and a version check under an ``flock`` on
``<root>/_berg_ray.lock``, which the kernel releases if the process dies; S3: ``If-None-Match`` / ``If-Match``).
S3 lives in :mod:`berg_ray.storage_s3` (its names are importable from here too). Every failure becomes a
:class:`~berg_ray.errors.StorageError` naming the URI and the fix.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from berg_ray.errors import StorageError

if TYPE_CHECKING:  # defined in storage_s3, which imports this module
    from berg_ray.storage_s3 import S3Options

TMP_DIR = "_tmp"  # local staging directory inside an output root (ignored by pyarrow: leading underscore)
# defined in berg_ray.storage_s3, importable from here
_S3_NAMES = ("S3Options", "S3Store", "check_bucket", "resolve_s3_options")


def __getattr__(name: str):
    if name in _S3_NAMES:  # lazily: storage_s3 imports this module
        from berg_ray import storage_s3

        return getattr(storage_s3, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class FileInfo:
    """One file of a store: ``name`` relative to the store root ('/'-separated), size in bytes, and a version
    string that changes when the content changes (S3 ETag, local mtime in ns)."""

    name: str
    size: int
    version: str


class Store:
    """A local directory or an S3 prefix (see the module docstring)."""

    uri: str

    def uri_of(self, name: str) -> str:
        """Full URI of ``name`` (relative to the root)."""
        return self.uri.rstrip("/") + "/" + name

    def list_files(self, recursive: bool = True) -> list[FileInfo]:
        raise NotImplementedError

    def read_bytes(self, name: str) -> bytes:
        raise NotImplementedError

    def staging_path(self, name: str) -> Path:
        """A fresh local path to write a file that :meth:`publish` will make visible as ``name``."""
        raise NotImplementedError

    def publish(self, staged: Path, name: str) -> None:
        """Make the complete local file ``staged`` visible as ``name`` in one step; ``staged`` is consumed."""
        raise NotImplementedError

    def arrow_path(self, name: str) -> tuple["object", str]:
        """(pyarrow FileSystem, path) of ``name``, for ranged reads such as Parquet footers."""
        raise NotImplementedError

    def check_readable(self) -> None:
        raise NotImplementedError

    def check_writable(self) -> None:
        raise NotImplementedError

    def delete(self, name: str) -> None:
        """Delete ``name`` (no error if it is already gone)."""
        raise NotImplementedError

    def put_if(self, name: str, data: bytes, expected: str | None) -> str | None:
        """Conditional write of a small object: create ``name`` only if it does not exist (``expected`` None), or
        replace it only if its version is still ``expected``. Returns the new version, or None if the condition
        did not hold (another writer got there first)."""
        raise NotImplementedError

    def delete_if(self, name: str, expected: str) -> bool:
        """Delete ``name`` only if its version is ``expected``; False if it changed or is gone."""
        raise NotImplementedError

    def read_versioned(self, name: str) -> tuple[bytes, str, float] | None:
        """(content, version, seconds since it was last written, by the store's clock), or None if absent."""
        raise NotImplementedError

    def remove_staging(self) -> int:
        """Delete every staging file under this root (left by killed runs); returns how many were removed."""
        raise NotImplementedError


def open_store(uri: str, s3: "S3Options | None" = None) -> Store:
    """The store for a local path (or ``file://``) or an ``s3://bucket/prefix`` URI."""
    if not isinstance(uri, str) or not uri.strip():
        raise StorageError(f"location {uri!r} is empty; give a local directory or s3://bucket/prefix/")
    uri = uri.strip()
    if uri.startswith("s3://"):
        bucket, _, prefix = uri[len("s3://"):].partition("/")
        if not bucket:
            raise StorageError(f"{uri!r} names no bucket; use s3://bucket/prefix/")
        from berg_ray.storage_s3 import S3Options, S3Store, check_bucket

        check_bucket(bucket, uri)
        return S3Store(bucket, prefix, s3 or S3Options())
    if "://" in uri and not uri.startswith("file://"):
        raise StorageError(f"unsupported location {uri!r}; use a local directory, file:// or s3://bucket/prefix/")
    return LocalStore(Path(uri.removeprefix("file://")).expanduser().resolve())


class LocalStore(Store):
    """A local (or network-mounted) directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = str(root)

    def list_files(self, recursive: bool = True) -> list[FileInfo]:
        if not self.root.is_dir():
            return []
        paths = self.root.rglob("*") if recursive else self.root.iterdir()
        infos = []
        for path in paths:
            if path.is_file():
                stat = path.stat()
                infos.append(FileInfo(path.relative_to(self.root).as_posix(), stat.st_size, str(stat.st_mtime_ns)))
        return sorted(infos, key=lambda info: info.name)

    def read_bytes(self, name: str) -> bytes:
        try:
            return (self.root / name).read_bytes()
        except OSError as exc:
            raise StorageError(f"cannot read {self.uri_of(name)}: {exc.strerror or exc}") from None

    def staging_path(self, name: str) -> Path:
        staging = self.root / TMP_DIR
        staging.mkdir(parents=True, exist_ok=True)
        return staging / f"{Path(name).name}.{uuid.uuid4().hex}.tmp"

    def publish(self, staged: Path, name: str) -> None:
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, target)  # atomic within one file system; staging_path is inside the root

    def arrow_path(self, name: str) -> tuple["object", str]:
        from pyarrow.fs import LocalFileSystem

        return LocalFileSystem(), str(self.root / name)

    def check_readable(self) -> None:
        if not self.root.is_dir():
            raise StorageError(f"input directory {self.uri} does not exist (or is not a directory); check the path")

    def delete(self, name: str) -> None:
        try:
            (self.root / name).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot delete {self.uri_of(name)}: {exc.strerror or exc}") from None

    def put_if(self, name: str, data: bytes, expected: str | None) -> str | None:
        target = self.root / name
        with self._locked():
            if expected is None:  # O_EXCL: exactly one creator wins, also on NFS
                try:
                    fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                except FileExistsError:
                    return None
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                return _digest(data)
            if self._version(target) != expected:
                return None
            staged = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
            staged.write_bytes(data)
            os.replace(staged, target)
            return _digest(data)

    def delete_if(self, name: str, expected: str) -> bool:
        with self._locked():
            if self._version(self.root / name) != expected:
                return False
            (self.root / name).unlink()
            return True

    def read_versioned(self, name: str) -> tuple[bytes, str, float] | None:
        with self._locked():
            try:
                data, modified = (self.root / name).read_bytes(), (self.root / name).stat().st_mtime
            except FileNotFoundError:
                return None
        return data, _digest(data), time.time() - modified

    def remove_staging(self) -> int:
        staging = self.root / TMP_DIR
        removed = 0
        for path in staging.iterdir() if staging.is_dir() else ():
            if path.is_file():
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def _version(self, path: Path) -> str | None:
        try:
            return _digest(path.read_bytes())
        except FileNotFoundError:
            return None

    def _locked(self):
        """An exclusive flock on ``<root>/_berg_ray.lock`` (released by the kernel if the process dies)."""
        from contextlib import contextmanager

        @contextmanager
        def lock():
            self.root.mkdir(parents=True, exist_ok=True)
            with open(self.root / "_berg_ray.lock", "a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
        return lock()

    def check_writable(self) -> None:
        try:
            probe = self.staging_path(".probe")
            probe.write_bytes(b"")
            probe.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot write to output directory {self.uri}: {exc.strerror or exc}; choose a "
                               f"writable location") from None


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]
