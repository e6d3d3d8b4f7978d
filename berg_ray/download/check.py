"""Proof that a release loads before it is installed: structure, checksums, and every file through the reader.

The files of a run (the newly verified ones in staging and those already installed) are linked into a view in the
BERG layout, ``DIR/.partial/verify/``, beside a manifest of the size and sha256 each file had when it was verified
(against its MD5 or the archive's CRC-32). The release reader (``berg_ray.checkpoint.release``) then reads them as
``encode`` does: scans.csv, each scan's params (every key, shape and dtype; finite weights), units.csv and its
metadata, and the core, each file's bytes checked against the manifest as they are read. A ``.pt`` container whose
members unpack to more than the file's bound is refused before torch reads it.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from berg_ray.checkpoint.keys import core_key_shapes
from berg_ray.checkpoint.manifest import FileDigest, write_manifest
from berg_ray.checkpoint.release import (CORE_FILE, read_scan_params, read_scan_table, read_scan_units,
                                         read_state_dict, weights_dir)
from berg_ray.config import DOWNLOAD_STAGING_DIR, RELEASE_SUBDIR, WEIGHTS_SUBDIR, ScanId
from berg_ray.download.bounds import SizeLimits
from berg_ray.download.fetch import VerificationError
from berg_ray.errors import BergRayError, ReleaseFormatError

VIEW_DIR = "verify"  # under DOWNLOAD_STAGING_DIR


def check_loadable(root: Path, files: Mapping[str, Path], digests: Mapping[str, FileDigest],
                   scans: Sequence[ScanId], limits: SizeLimits, where: str) -> None:
    """Read the release made of ``files`` ({layout path: file on disk}) for ``scans`` as the model loader does.

    Args:
        root: the target directory (the view is built in its staging folder, then removed).
        files: every file of the run, staged or installed.
        digests: {layout path: size and sha256} each file had when it was verified.
        scans: the scans the run installs.
        limits: size bounds (a ``.pt`` container may not unpack to more than its file's bound).
        where: the source, for the message.
    Raises:
        VerificationError: a file is missing, differs from its digest, or does not load (one line naming it).
    """
    view = root / DOWNLOAD_STAGING_DIR / VIEW_DIR
    shutil.rmtree(view, ignore_errors=True)
    try:
        for path, source in files.items():
            _link(source, view / RELEASE_SUBDIR / path)
        write_manifest(view / RELEASE_SUBDIR, digests)
        _read_release(view, scans, limits)
    except BergRayError as exc:
        raise VerificationError(f"{where}: the release does not load, nothing was installed: {exc}") from None
    finally:
        shutil.rmtree(view, ignore_errors=True)


def _link(source: Path, target: Path) -> None:
    """``target`` names the bytes of ``source``: a hard link, or a copy where the file system has none."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _read_release(view: Path, scans: Sequence[ScanId], limits: SizeLimits) -> None:
    table = read_scan_table(view)
    for scan in scans:
        if scan not in table:
            raise ReleaseFormatError(f"{weights_dir(view) / 'scans.csv'} does not list {scan}, whose weights the "
                                     "source holds: the release files do not belong together")
        path = weights_dir(view) / scan.weights_file
        _check_container(path, limits.file_bound(f"{WEIGHTS_SUBDIR}/{scan.weights_file}"))
        read_scan_params(view, scan, table[scan])
        read_scan_units(view, scan)
    core = weights_dir(view) / CORE_FILE
    _check_container(core, limits.file_bound(f"{WEIGHTS_SUBDIR}/{CORE_FILE}"))
    read_state_dict(core, core_key_shapes())


def _check_container(path: Path, bound: int) -> None:
    """A torch zip whose members declare more than ``bound`` bytes unpacked is refused before it is loaded."""
    if not path.is_file() or not zipfile.is_zipfile(path):
        return  # the reader names a missing or non-zip file
    try:
        with zipfile.ZipFile(path) as container:
            unpacked = sum(info.file_size for info in container.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ReleaseFormatError(f"{path}: corrupt zip container ({exc})") from None
    if unpacked > bound:
        raise ReleaseFormatError(f"{path}: its tensors unpack to {unpacked} bytes, more than the file's bound "
                                 f"{bound}: not a release file (pass --max-file-bytes if it is)")
