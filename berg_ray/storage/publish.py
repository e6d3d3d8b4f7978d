"""Publishing a directory (or a file) in one step: build it in a temp directory (file) beside the target, then
rename it into place.

A reader sees the old directory or the complete new one (the name is absent for the instant between the two
renames), never a mix of old and new files; a failed build leaves the target untouched. Files and directories get
the modes the process's umask gives, like ``open``/``mkdir`` (temp files are created 0600/0700).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from typing import BinaryIO
from pathlib import Path

from berg_ray.errors import BergRayError


def publish_directory(target: str | os.PathLike[str], build: Callable[[Path], None], force: bool = False) -> Path:
    """Create directory ``target`` with the contents ``build`` writes into an empty directory.

    Args:
        target: directory to publish; it may be absent or an empty directory.
        build: writes the contents into the directory it is given (a temp directory on the same file system).
        force: replace a non-empty ``target`` completely (its old contents are removed).

    Returns:
        ``target`` as a Path.

    Raises:
        BergRayError: ``target`` is a file, or a non-empty directory and ``force`` is False.
    """
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise BergRayError(f"{target} exists and is not a directory; choose another path")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise BergRayError(f"{target} is not empty; choose an empty or new folder, or pass --force (force=True) "
                           "to replace its contents completely")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    old = None
    try:
        os.chmod(staging, 0o777 & ~current_umask())  # mkdtemp creates 0700; give it the mode mkdir would
        build(staging)
        if target.is_dir():
            old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".old"))
            os.replace(target, old / target.name)
        os.replace(staging, target)
    except BaseException:
        if old is not None and not target.exists():
            os.replace(old / target.name, target)  # put the previous version back
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return target


def current_umask() -> int:
    """The process's file mode creation mask (read by setting and restoring it)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def publish_file(path: Path, write: Callable[[BinaryIO], None], flag: str = "--out") -> None:
    """Write file ``path`` with ``write(handle)`` so that it appears only complete (a temp file in the same
    directory, then rename), with the mode ``open`` would give. An OS error (disk full, path gone) is a
    BergRayError naming the path and ``flag``, and leaves nothing behind."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise BergRayError(f"cannot write {path} ({exc.strerror or exc}); choose a writable {flag}") from None
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
        os.chmod(temp, 0o666 & ~current_umask())  # mkstemp creates 0600; give the file the mode open() would
        os.replace(temp, path)
    except BaseException as exc:
        Path(temp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise BergRayError(f"cannot write {path} ({exc.strerror or exc}); choose a writable {flag}") from None
        raise
