"""The release manifest: size and sha256 of every release file, written once and checked on every read.

``manifest.json`` sits in the release root (``berg_dir/encoding_models/.../model-3DCNN/``, the parent of
``encoding_models_weights/`` and ``metadata/``) and lists each file by its path relative to that root::

    {"format": "berg-ray-manifest", "version": 1, "algorithm": "sha256",
     "files": {"encoding_models_weights/params_core.pt": {"size": 18457611, "sha256": "9f2c..."}, ...}}

``berg-ray demo-release`` writes it from the files it generated; a downloader writes it from the published checksums
(``write_manifest(root, entries)``) or from the files it fetched (``write_manifest(root)``) and can check a whole
release with ``verify_release``. The release reader reads each file's bytes once through ``read_verified``, which
hashes exactly the bytes it returns (nothing is cached between reads, so a file changed after a check is caught at
its next read). A release without a manifest still loads; files a manifest does not list are read unverified.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from berg_ray.config import HASH_CHUNK_BYTES, MANIFEST_FILE, MANIFEST_FORMAT, MANIFEST_VERSION
from berg_ray.errors import ReleaseFormatError

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FIX = ("the file is damaged or was changed after the release was written: re-download it (or re-extract it; for "
        "a generated release, rerun `berg-ray demo-release`)")
_MANIFEST_FIX = "delete it and re-download the release (or rerun `berg-ray demo-release` for a generated one)"


@dataclass(frozen=True)
class FileDigest:
    """What the manifest records of one file: ``size`` in bytes and the lowercase hex ``sha256`` of its content."""

    size: int
    sha256: str


def digest_bytes(data: bytes) -> FileDigest:
    """The FileDigest of an in-memory file content."""
    return FileDigest(len(data), hashlib.sha256(data).hexdigest())


def digest_file(path: str | os.PathLike[str]) -> FileDigest:
    """The FileDigest of a file, read in chunks of ``HASH_CHUNK_BYTES`` (constant memory)."""
    sha, size = hashlib.sha256(), 0
    with open(path, "rb") as file:
        while chunk := file.read(HASH_CHUNK_BYTES):
            sha.update(chunk)
            size += len(chunk)
    return FileDigest(size, sha.hexdigest())


def release_files(root: str | os.PathLike[str]) -> list[str]:
    """Every regular file under ``root`` (relative POSIX paths, sorted), except the manifest and hidden files."""
    base = Path(root)
    return sorted(p.relative_to(base).as_posix() for p in base.rglob("*")
                  if p.is_file() and not p.is_symlink() and p.name != MANIFEST_FILE
                  and not any(part.startswith(".") for part in p.relative_to(base).parts))


def write_manifest(root: str | os.PathLike[str], entries: Mapping[str, FileDigest] | None = None) -> Path:
    """Write ``root/manifest.json`` atomically (a temp file renamed into place) and return its path.

    Args:
        root: the release root.
        entries: relative path -> FileDigest, e.g. checksums published with a download; None hashes every file
            of ``release_files(root)``.

    Raises:
        ReleaseFormatError: a listed path is not a safe relative path or not a file under ``root``.
    """
    base = Path(root)
    if entries is None:
        entries = {name: digest_file(base / name) for name in release_files(base)}
    for name in entries:
        if not (base / _safe_relative(name, base / MANIFEST_FILE)).is_file():
            raise ReleaseFormatError(f"{base / name}: listed for the manifest but not a file under {base}")
    document = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "algorithm": "sha256",
                "files": {name: {"size": d.size, "sha256": d.sha256} for name, d in sorted(entries.items())}}
    handle, temp = tempfile.mkstemp(dir=base, prefix=f".{MANIFEST_FILE}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(document, file, indent=1)
            file.write("\n")
        os.replace(temp, base / MANIFEST_FILE)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return base / MANIFEST_FILE


def read_manifest(root: str | os.PathLike[str]) -> dict[str, FileDigest] | None:
    """The manifest of the release at ``root`` (relative path -> FileDigest), or None when it has none.

    Raises:
        ReleaseFormatError: the manifest exists but is unreadable, not JSON, of another format or version, or
            lists an unsafe path or a malformed entry.
    """
    path = Path(root) / MANIFEST_FILE
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        text = ""
    except OSError as exc:
        raise ReleaseFormatError(f"{path}: cannot read the release manifest ({exc.strerror or exc})") from None
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise ReleaseFormatError(f"{path}: not valid JSON; {_MANIFEST_FIX}")
    if document.get("format") != MANIFEST_FORMAT or not isinstance(document.get("files"), dict):
        raise ReleaseFormatError(f"{path}: not a berg-ray manifest (format {document.get('format')!r}); "
                                 f"{_MANIFEST_FIX}")
    if document.get("version") != MANIFEST_VERSION or document.get("algorithm") != "sha256":
        raise ReleaseFormatError(f"{path}: manifest version {document.get('version')!r} / algorithm "
                                 f"{document.get('algorithm')!r}; this berg_ray reads version {MANIFEST_VERSION} "
                                 f"with sha256 (upgrade berg_ray, or {_MANIFEST_FIX})")
    return {_safe_relative(name, path): _entry(name, entry, path) for name, entry in document["files"].items()}



def read_verified(root: str | os.PathLike[str], relative: str, manifest: Mapping[str, FileDigest] | None = None,
                  ) -> bytes:
    """The bytes of ``root/relative``, checked against the manifest when it lists the file.

    Args:
        root: the release root.
        relative: POSIX path of the file relative to ``root``.
        manifest: the release's manifest if already read; None reads it now (it may be absent).

    Raises:
        ReleaseFormatError: the size or sha256 differs from the manifest (names the file and the fix), or the
            manifest is corrupt.
        OSError: the file cannot be read (the caller names the missing file).
    """
    manifest = read_manifest(root) if manifest is None else manifest
    path = Path(root) / relative
    data = path.read_bytes()
    expected = (manifest or {}).get(relative)
    if expected is not None:
        check_digest(path, digest_bytes(data), expected)
    return data


def check_digest(path: Path, actual: FileDigest, expected: FileDigest) -> None:
    """Raise ReleaseFormatError naming ``path``, both values and the fix unless ``actual == expected``."""
    if actual.size != expected.size:
        raise ReleaseFormatError(f"{path}: size {actual.size} bytes, the manifest says {expected.size}; {_FIX}")
    if actual.sha256 != expected.sha256:
        raise ReleaseFormatError(f"{path}: sha256 {actual.sha256} differs from the manifest's {expected.sha256}; "
                                 f"{_FIX}")


def verify_release(root: str | os.PathLike[str]) -> list[str]:
    """Check every file the manifest lists (size, then sha256 streamed from disk); return the checked names.

    Raises:
        ReleaseFormatError: no manifest, a listed file is missing, or a size or sha256 differs.
    """
    base = Path(root)
    manifest = read_manifest(base)
    if manifest is None:
        raise ReleaseFormatError(f"{base / MANIFEST_FILE}: no manifest, so there is nothing to verify against")
    for name, expected in sorted(manifest.items()):
        path = base / name
        if not path.is_file():
            raise ReleaseFormatError(f"{path}: listed in {base / MANIFEST_FILE} but missing; re-download it")
        if path.stat().st_size != expected.size:
            raise ReleaseFormatError(f"{path}: size {path.stat().st_size} bytes, the manifest says "
                                     f"{expected.size}; {_FIX}")
        check_digest(path, digest_file(path), expected)
    return sorted(manifest)


def _safe_relative(name: object, source: Path) -> str:
    """``name`` if it is a plain relative POSIX path inside the root (no ``..``, not absolute), else an error."""
    pure = PurePosixPath(name) if isinstance(name, str) else None
    if pure is None or not name or pure.is_absolute() or ".." in pure.parts or "\\" in name or \
            pure.as_posix() != name:
        raise ReleaseFormatError(f"{source}: file name {name!r} is not a relative path inside the release; "
                                 f"{_MANIFEST_FIX}")
    return name


def _entry(name: str, entry: object, source: Path) -> FileDigest:
    """One manifest entry as a FileDigest; ReleaseFormatError if size or sha256 is malformed."""
    size = entry.get("size") if isinstance(entry, dict) else None
    sha = entry.get("sha256") if isinstance(entry, dict) else None
    if isinstance(size, bool) or not isinstance(size, int) or size < 0 or not isinstance(sha, str) \
            or not _SHA256.match(sha):
        raise ReleaseFormatError(f"{source}: entry {name!r} must be {{'size': bytes >= 0, 'sha256': 64 hex "
                                 f"digits}}, got {entry!r}; {_MANIFEST_FIX}")
    return FileDigest(size, sha)
