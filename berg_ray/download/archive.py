"""Release files inside a zip, wherever the zip puts them: find them by name, extract them checked.

The MICrONS archive holds ``params_core.pt``, ``params_<session>_<scan>.pt``, ``scans.csv`` and ``units.csv`` in
a folder of its own; other zips may nest them deeper or add metadata files. Members are found by base name;
two members with the same release name are an error (which one is meant is unknowable), and so is a release
member that is not a regular file (a symbolic link, a device: its Unix mode in the entry's external attributes).
Sizes are bounded by the caller (``berg_ray.download.bounds``) from the sizes the zip's directory declares.
"""

from __future__ import annotations

import hashlib
import stat
import zipfile
from pathlib import Path

from berg_ray.download.fetch import VerificationError
from berg_ray.download.files import layout_path
from berg_ray.errors import BergRayError

_CHUNK = 1024 * 1024


def release_members(archive: zipfile.ZipFile, uri: str) -> dict[str, zipfile.ZipInfo]:
    """{layout path: member} of the release files in the zip (macOS resource forks ignored)."""
    found: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        name = info.filename.replace("\\", "/")
        basename = name.rpartition("/")[2]
        if info.is_dir() or name.startswith("__MACOSX/") or basename.startswith("._"):
            continue
        path = layout_path(basename)
        if path is None:
            continue
        if path in found:
            raise BergRayError(f"{uri} holds {basename} twice ({found[path].filename} and {info.filename}); "
                               "unpack it yourself and keep one")
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind not in (0, stat.S_IFREG):
            what = "a symbolic link" if kind == stat.S_IFLNK else f"not a regular file (mode {kind:o})"
            raise VerificationError(f"{uri}: member {info.filename} is {what}; release files must be regular "
                                    "files, nothing was installed (unpack the archive yourself and keep the file "
                                    "the link names)")
        found[path] = info
    return found


def open_archive(path: Path, uri: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise VerificationError(f"{uri} is not a readable zip archive ({exc}); nothing was installed") from None


def extract(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, uri: str) -> str:
    """Write one member to ``target`` (CRC checked by zipfile, size checked here); returns its sha256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    sha256, written = hashlib.sha256(), 0
    try:
        with archive.open(info) as source, open(target, "wb") as out:
            while chunk := source.read(_CHUNK):
                written += len(chunk)
                if written > info.file_size:
                    raise zipfile.BadZipFile(f"more bytes than the {info.file_size} its header declares")
                sha256.update(chunk)
                out.write(chunk)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
        target.unlink(missing_ok=True)
        raise VerificationError(f"{uri}: member {info.filename} is corrupt ({exc}); nothing was installed") from None
    return sha256.hexdigest()
