"""The storage interface: :class:`Store` (a local directory or an S3 prefix) and what it lists.

A :class:`Store` lists files (name relative to its root, size, version), reads whole files, checks access before
any compute starts, and publishes files atomically: a file is written completely to a temporary place first, then
made visible in one step (local: ``os.replace`` from ``<root>/_tmp/``; S3: one PUT, or a multipart upload that
becomes visible only when completed). Readers therefore never see a partially written file.

Small control objects (the sweep lease) use conditional writes instead: create-if-absent and replace- or
delete-if-unchanged (local: ``O_CREAT | O_EXCL`` and a version check under an ``flock`` on
``<root>/_berg_ray.lock``, which the kernel releases if the process dies; S3: ``If-None-Match`` / ``If-Match``).

Implementations: :class:`berg_ray.storage.local.LocalStore` and :class:`berg_ray.storage.s3.S3Store`; open one with
:func:`berg_ray.storage.open_store`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

LOCK_FILE = "_berg_ray.lock"  # local outputs: flock file of the compare-and-swap
TMP_DIR = "_tmp"  # local staging directory inside an output root (ignored by pyarrow: leading underscore)


@dataclass(frozen=True)
class FileInfo:
    """One file of a store: ``name`` relative to the store root ('/'-separated), size in bytes, and a version
    string that changes when the content changes (S3 ETag, local mtime in ns)."""

    name: str
    size: int
    version: str


@dataclass(frozen=True)
class LinkProblem:
    """A symbolic link of a local listing that is not followed: ``name`` (relative to the root) and why."""

    name: str
    reason: str


class Store:
    """A local directory or an S3 prefix (see the module docstring)."""

    uri: str

    def uri_of(self, name: str) -> str:
        """Full URI of ``name`` (relative to the root)."""
        return self.uri.rstrip("/") + "/" + name

    def list_files(self, recursive: bool = True) -> list[FileInfo]:
        raise NotImplementedError

    def list_inputs(self) -> tuple[list[FileInfo], list[LinkProblem]]:
        """Every file under the root (recursively) and the symbolic links not followed (local stores only)."""
        return self.list_files(recursive=True), []

    def read_bytes(self, name: str) -> bytes:
        raise NotImplementedError

    def open_read(self, name: str) -> BinaryIO:
        """``name`` as a seekable binary file, read on demand (local: the file; S3: ranged GETs), so a reader can
        check a header before the data is read. Use it as a context manager."""
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

    def root_exists(self) -> bool:
        """Whether the root exists (S3 prefixes always do)."""
        return True

    def remove_if_unused(self) -> bool:
        """Remove the root if it holds nothing but the store's own bookkeeping (an empty staging area, a lock
        file): what a refused run leaves behind. True if removed; S3 keeps no such objects (no-op)."""
        return False
