"""Checks that a local output location can be written, run before any work so a bad path fails at once.

Each check names the option, the path and the fix in a BergRayError (the CLI prints it as one ``error:`` line).
A missing parent directory is created, as the writer would create it; nothing else is left behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from berg_ray.errors import BergRayError


def check_output_file(path: Path, option: str) -> None:
    """Fail unless ``path`` can be written as a file: not a directory, and its directory exists or can be created
    and accepts new files.

    Args:
        path: the output file.
        option: how the user named it (e.g. ``--out``), for the message.
    """
    if path.is_dir():
        raise BergRayError(f"{option} {path} is a directory; give a file name, e.g. {path / 'responses.npy'}")
    _ensure_writable_dir(path.parent, option, given=False)


def check_output_dir(path: Path, option: str) -> None:
    """Fail unless ``path`` is (or can be created as) a directory that accepts new files.

    Args:
        path: the output directory.
        option: how the user named it (e.g. ``--out``), for the message.
    """
    _ensure_writable_dir(path, option, given=True)


def _ensure_writable_dir(path: Path, option: str, given: bool) -> None:
    """Create ``path`` if needed and probe it with a temp file; ``given``: the user named ``path`` itself."""
    for ancestor in (path, *path.parents):
        if ancestor.exists() or ancestor.is_symlink():
            if not ancestor.is_dir():
                where = f"{option} {path}" if given and ancestor == path else str(ancestor)
                raise BergRayError(f"{where} is a file, not a directory; choose another {option}")
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BergRayError(f"cannot create directory {path} for {option} ({exc.strerror or exc}); choose a "
                           "writable location") from None
    try:
        handle, probe = tempfile.mkstemp(dir=path, prefix=".berg-ray-probe.")
    except OSError as exc:
        raise BergRayError(f"cannot write in {path} for {option} ({exc.strerror or exc}); choose a writable "
                           "location") from None
    os.close(handle)
    os.unlink(probe)
