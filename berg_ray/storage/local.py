"""A local (or network-mounted) directory as a :class:`~berg_ray.storage.base.Store`: atomic publishing through
``<root>/_tmp/`` and ``os.replace``, conditional writes under an ``flock`` on ``<root>/_berg_ray.lock``, and
symbolic links followed only inside the root unless asked.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import stat
import time
import uuid
from pathlib import Path
from typing import BinaryIO

from berg_ray.errors import InputLinkError, StorageError
from berg_ray.validation.names import printable_name
from berg_ray.storage.base import LOCK_FILE, TMP_DIR, FileInfo, LinkProblem, Store


class LocalStore(Store):
    """A local (or network-mounted) directory.

    Symbolic links: a link to a file inside the root is listed under its own name; a link to a directory inside
    the root is not descended (its files are listed under their real path). A link leading outside the root is
    a :class:`LinkProblem` unless ``follow_symlinks`` (then it is listed, or descended, like a real file or
    directory; a directory already on the path is not entered again), and so is a dangling link.
    :meth:`open_read` refuses a path leading outside the root again, should a link be swapped after listing.
    """

    def __init__(self, root: Path, follow_symlinks: bool = False) -> None:
        self.root, self.follow_symlinks = root, follow_symlinks
        self.uri = str(root)
        self._real_root = os.path.realpath(root)

    def list_files(self, recursive: bool = True) -> list[FileInfo]:
        return self._walk(recursive)[0]

    def list_inputs(self) -> tuple[list[FileInfo], list[LinkProblem]]:
        return self._walk(recursive=True)

    def _walk(self, recursive: bool) -> tuple[list[FileInfo], list[LinkProblem]]:
        if not self.root.is_dir():
            return [], []
        files: list[FileInfo] = []
        problems: list[LinkProblem] = []
        pending = [("", str(self.root), frozenset({self._real_root}))]  # (name prefix, directory, real ancestors)
        while pending:
            prefix, directory, ancestors = pending.pop()
            try:
                entries = list(os.scandir(directory))
            except OSError as exc:
                problems.append(LinkProblem(prefix.rstrip("/"), f"cannot list directory: {exc.strerror or exc}"))
                continue
            for entry in entries:
                name = prefix + entry.name
                if entry.is_symlink():
                    followed = self._link(entry.path, name, files, problems)
                    if followed is not None and recursive and followed not in ancestors:
                        pending.append((name + "/", entry.path, ancestors | {followed}))
                elif entry.is_dir(follow_symlinks=False):
                    if recursive:
                        pending.append((name + "/", entry.path, ancestors | {os.path.realpath(entry.path)}))
                elif entry.is_file(follow_symlinks=False):
                    info = entry.stat(follow_symlinks=False)
                    files.append(FileInfo(name, info.st_size, str(info.st_mtime_ns)))
        return sorted(files, key=lambda info: info.name), sorted(problems, key=lambda p: p.name)

    def _link(self, path: str, name: str, files: list[FileInfo], problems: list[LinkProblem]) -> str | None:
        """Handle the link ``path``: list it (a file), or return its real path when it is a directory to enter."""
        try:
            info = os.stat(path)  # follows the whole chain
        except OSError as exc:
            problems.append(LinkProblem(name, f"dangling symbolic link (to {os.readlink(path)}: "
                                              f"{exc.strerror or exc}); fix or remove the link"))
            return None
        target = os.path.realpath(path)
        inside = _is_within(target, self._real_root)
        if not inside and not self.follow_symlinks:
            problems.append(LinkProblem(name, f"symbolic link to {target}, outside the input {self.uri}; not read "
                                              f"(pass --follow-symlinks to read through links)"))
            return None
        if stat.S_ISREG(info.st_mode):
            files.append(FileInfo(name, info.st_size, str(info.st_mtime_ns)))
        elif stat.S_ISDIR(info.st_mode) and not inside:
            return target
        return None

    def read_bytes(self, name: str) -> bytes:
        try:
            return (self.root / name).read_bytes()
        except OSError as exc:
            raise StorageError(f"cannot read {self.uri_of(name)}: {exc.strerror or exc}") from None

    def open_read(self, name: str) -> BinaryIO:
        path = self.root / name
        target = os.path.realpath(path)
        if not self.follow_symlinks and not _is_within(target, self._real_root):
            raise InputLinkError(f"{printable_name(self.uri_of(name))} leads to {printable_name(target)}, outside "
                                 f"the input {printable_name(self.uri)}; not read (pass --follow-symlinks to read "
                                 f"through links)")
        try:
            return open(path, "rb")
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
            with open(self.root / LOCK_FILE, "a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
        return lock()

    def check_writable(self) -> None:
        """Probe by writing a staging file; directories the probe had to create are removed again."""
        missing = [d for d in (self.root / TMP_DIR, self.root, *self.root.parents) if not d.is_dir()]
        try:
            probe = self.staging_path(".probe")
            probe.write_bytes(b"")
            probe.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot write to output directory {self.uri}: {exc.strerror or exc}; choose a "
                               f"writable location") from None
        finally:
            for created in missing:  # innermost first
                with contextlib.suppress(OSError):
                    created.rmdir()  # only if still empty

    def root_exists(self) -> bool:
        return self.root.is_dir()

    def remove_if_unused(self) -> bool:
        try:
            entries = {entry.name: entry for entry in os.scandir(self.root)}
        except OSError:
            return False
        staging = entries.get(TMP_DIR)
        if set(entries) - {TMP_DIR, LOCK_FILE} or (staging is not None and any(os.scandir(staging.path))):
            return False
        with contextlib.suppress(OSError):
            if staging is not None:
                os.rmdir(staging.path)
            (self.root / LOCK_FILE).unlink(missing_ok=True)
            self.root.rmdir()
            return True
        return False


def _is_within(path: str, root: str) -> bool:
    """Whether the real path ``path`` is ``root`` or below it (``root`` is a real path)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]
