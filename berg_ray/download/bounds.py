"""Size bounds of release files, derived from what each file holds (wang2025-model-spec.md §1.1-1.2).

A download refuses a file larger than its bound, and a run whose files together exceed the total bound, before
any byte of them is fetched or unpacked. A file's known content:

- ``params_core.pt``: its 250 tensors (``core_key_shapes``), elements x 4 bytes (float32);
- ``params_{session}_{scan}.pt``: its 88 tensors (``scan_key_shapes``) at the scan's released unit count U
  (``RELEASED_UNIT_COUNTS``), elements x 4 bytes;
- ``metadata/*_metadata.npy``: U x (``DOWNLOAD_METADATA_UNIT_VALUES`` + the scan's imaging fields) numbers x 8
  bytes (int64 / float64);
- ``scans.csv``, ``units.csv``: a row per scan / per released unit, ``DOWNLOAD_CSV_ROW_BYTES`` each;

and its bound is that x ``DOWNLOAD_SIZE_MARGIN`` + ``DOWNLOAD_SIZE_SLACK_BYTES``. The total bound is the sum of
the bounds of the whole release (13 scans, one metadata file each). :class:`SizeLimits` carries the overrides
(``--max-file-bytes``: one bound for every file; ``--max-total-bytes``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from berg_ray.checkpoint.keys import core_key_shapes, scan_key_shapes
from berg_ray.config import (DOWNLOAD_CSV_ROW_BYTES, DOWNLOAD_METADATA_UNIT_VALUES, DOWNLOAD_SIZE_MARGIN,
                             DOWNLOAD_SIZE_SLACK_BYTES, METADATA_SUBDIR, RELEASED_UNIT_COUNTS, WEIGHTS_SUBDIR,
                             ScanId, all_scans)
from berg_ray.download.fetch import VerificationError
from berg_ray.download.files import scan_of
from berg_ray.errors import BergRayError

_SIZE = re.compile(r"^([0-9]+)\s*(B|kB|KB|KiB|MB|MiB|GB|GiB|TB|TiB)?$", re.ASCII)
_UNITS = {None: 1, "B": 1, "kB": 1000, "KB": 1000, "KiB": 1024, "MB": 1000 ** 2, "MiB": 1024 ** 2,
          "GB": 1000 ** 3, "GiB": 1024 ** 3, "TB": 1000 ** 4, "TiB": 1024 ** 4}


def _bounded(content_bytes: int) -> int:
    return math.ceil(content_bytes * DOWNLOAD_SIZE_MARGIN) + DOWNLOAD_SIZE_SLACK_BYTES


def _tensor_bytes(shapes: Mapping[str, tuple[int, ...]]) -> int:
    return 4 * sum(math.prod(shape) for shape in shapes.values())


def _units(scan: ScanId) -> int:
    return RELEASED_UNIT_COUNTS[(scan.session, scan.scan)]


def file_bound(path: str) -> int:
    """The derived bound in bytes of the release file at layout path ``path`` (e.g. ``metadata/session-8_scan-5_
    metadata.npy``); KeyError for a path that is not a release file."""
    folder, _, name = path.rpartition("/")
    scan = scan_of(name)
    if folder == WEIGHTS_SUBDIR and name == "params_core.pt":
        return _bounded(_tensor_bytes(core_key_shapes()))
    if folder == WEIGHTS_SUBDIR and name == "scans.csv":
        return _bounded(DOWNLOAD_CSV_ROW_BYTES * (1 + len(RELEASED_UNIT_COUNTS)))
    if folder == WEIGHTS_SUBDIR and name == "units.csv":
        return _bounded(DOWNLOAD_CSV_ROW_BYTES * (1 + sum(RELEASED_UNIT_COUNTS.values())))
    if folder == WEIGHTS_SUBDIR and scan is not None and name == scan.weights_file:
        return _bounded(_tensor_bytes(scan_key_shapes(_units(scan))))
    if folder == METADATA_SUBDIR and scan is not None:
        return _bounded(8 * _units(scan) * (DOWNLOAD_METADATA_UNIT_VALUES + len(scan.fields)))
    raise KeyError(f"{path!r} is not a release file")


def total_bound() -> int:
    """The derived bound in bytes of the whole release: the sum of its files' bounds."""
    shared = [f"{WEIGHTS_SUBDIR}/{name}" for name in ("params_core.pt", "scans.csv", "units.csv")]
    per_scan = [p for s in all_scans() for p in (f"{WEIGHTS_SUBDIR}/{s.weights_file}",
                                                  f"{METADATA_SUBDIR}/{s.metadata_file}")]
    return sum(file_bound(p) for p in shared + per_scan)


@dataclass(frozen=True)
class SizeLimits:
    """Overrides of the derived bounds in bytes; None keeps the derived one."""

    max_file_bytes: int | None = None  # --max-file-bytes: the bound of every release file
    max_total_bytes: int | None = None  # --max-total-bytes: the bound of the files of one run together

    def file_bound(self, path: str) -> int:
        return self.max_file_bytes if self.max_file_bytes is not None else file_bound(path)

    def total_bound(self) -> int:
        return self.max_total_bytes if self.max_total_bytes is not None else total_bound()


def check_sizes(sizes: Mapping[str, int], limits: SizeLimits, where: str) -> None:
    """Refuse (VerificationError) when a file of ``sizes`` ({layout path: bytes}) or their sum exceeds its bound.

    Called with the sizes a listing or a zip's directory declares, before anything is fetched or unpacked.
    """
    for path, size in sorted(sizes.items()):
        bound = limits.file_bound(path)
        if size > bound:
            how = ("--max-file-bytes" if limits.max_file_bytes is not None else
                   "derived from its known content; pass --max-file-bytes to allow more")
            raise VerificationError(f"{where}: {path} is {size} bytes, more than {bound} ({how}): not a release "
                                    "file of this model, nothing was installed")
    total = sum(sizes.values())
    if total > limits.total_bound():
        how = ("--max-total-bytes" if limits.max_total_bytes is not None else
               "the whole release's bound; pass --max-total-bytes to allow more")
        raise VerificationError(f"{where}: the release files together are {total} bytes, more than "
                                f"{limits.total_bound()} ({how}); nothing was installed")


def parse_size(value: str | None, flag: str) -> int | None:
    """A byte count from the command line: ``123``, ``64MiB``, ``2GB`` (ASCII digits); None stays None.

    Raises:
        BergRayError: not a positive whole number of bytes with an optional unit.
    """
    if value is None:
        return None
    match = _SIZE.match(value.strip())
    if match is None or int(match.group(1)) == 0:
        raise BergRayError(f"{flag} {value!r} is not a positive size in bytes; write e.g. 500000000, 512MiB or 2GB")
    return int(match.group(1)) * _UNITS[match.group(2)]
