"""Which files make a release, and which of them a ``--sessions`` selection needs (pure functions).

Names are *layout paths*: relative to the model directory (``RELEASE_SUBDIR``), e.g.
``encoding_models_weights/params_8_5.pt`` or ``metadata/session-8_scan-5_metadata.npy``. Both metadata names
(``session-8_scan-5_metadata.npy`` and ``session8_scan5_metadata.npy``) are release files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from berg_ray.config import METADATA_SUBDIR, RELEASE_SUBDIR, SCAN_FIELDS, WEIGHTS_SUBDIR, ScanId
from berg_ray.errors import BergRayError

SHARED_WEIGHTS = ("params_core.pt", "scans.csv", "units.csv")
_PARAMS = re.compile(r"^params_([0-9]{1,4})_([0-9]{1,4})\.pt$")  # ASCII digits (\d takes any Unicode digit)
_METADATA = re.compile(r"^session-?([0-9]{1,4})_scan-?([0-9]{1,4})_metadata\.npy$")


def layout_path(basename: str) -> str | None:
    """The layout path of a release file called ``basename``, or None if it is not one (or names no released
    scan)."""
    if basename in SHARED_WEIGHTS:
        return f"{WEIGHTS_SUBDIR}/{basename}"
    scan = scan_of(basename)
    if scan is None:
        return None
    return f"{WEIGHTS_SUBDIR}/{basename}" if basename.startswith("params_") else f"{METADATA_SUBDIR}/{basename}"


def scan_of(basename: str) -> ScanId | None:
    """The released scan a per-scan file belongs to (params or metadata), else None."""
    match = _PARAMS.match(basename) or _METADATA.match(basename)
    if match is None or (int(match.group(1)), int(match.group(2))) not in SCAN_FIELDS:
        return None
    return ScanId(int(match.group(1)), int(match.group(2)))


def mirror_layout_path(key: str) -> str | None:
    """The layout path of a key relative to a mirror prefix (the berg_dir root or the model directory)."""
    relative = key[len(RELEASE_SUBDIR) + 1:] if key.startswith(RELEASE_SUBDIR + "/") else key
    folder, _, basename = relative.rpartition("/")
    path = layout_path(basename)
    return path if path is not None and path.rpartition("/")[0] == folder else None


def parse_sessions(value: str | None) -> list[ScanId] | None:
    """``--sessions``: None or 'all' -> None (every scan the source has); else the comma-separated scans."""
    if value is None or value.strip() == "all":
        return None
    try:
        scans = [ScanId.parse(s.strip()) for s in value.split(",") if s.strip()]
    except BergRayError as exc:
        raise BergRayError(f"--sessions: {exc}") from None
    if not scans:
        raise BergRayError(f"--sessions {value!r} names no scan; use 'all' or e.g. session-8_scan-5,session-4_scan-7")
    return sorted(set(scans))


def select(available: Iterable[str], sessions: Sequence[ScanId] | None, where: str) -> tuple[list[str], list[ScanId]]:
    """The layout paths to install and the scans they cover.

    Args:
        available: layout paths the source holds (weights and metadata).
        sessions: wanted scans, or None for every scan whose params file the source holds.
        where: the source, for error messages.
    Returns:
        (paths, scans): shared weights, then per scan its params file and its metadata files (one or both names).
    Raises:
        BergRayError: a shared file, a wanted scan's params or its metadata is missing from the source.
    """
    present = set(available)
    scans = list(sessions) if sessions is not None else scans_in(present)
    weights = [f"{WEIGHTS_SUBDIR}/{name}" for name in SHARED_WEIGHTS]
    weights += [f"{WEIGHTS_SUBDIR}/{s.weights_file}" for s in scans]
    missing = [p for p in weights if p not in present]
    paths = list(weights)
    for scan in scans:
        names = [f"{METADATA_SUBDIR}/{n}" for n in scan.metadata_files if f"{METADATA_SUBDIR}/{n}" in present]
        missing += [] if names else [f"{METADATA_SUBDIR}/{scan.metadata_file}"]
        paths += names
    if missing or not scans:
        raise BergRayError(f"{where} is not a complete release for the scans asked for: missing "
                           f"{', '.join(missing) or 'every params_<session>_<scan>.pt'}; check --source / --sessions")
    return [p for p in paths if p in present], list(scans)


def scans_in(available: Iterable[str]) -> list[ScanId]:
    """The scans whose params file is among the layout paths ``available``, sorted."""
    prefix = f"{WEIGHTS_SUBDIR}/params_"
    return sorted({scan_of(p.rpartition("/")[2]) for p in available if p.startswith(prefix)} - {None})


def missing_metadata(available: Iterable[str], scans: Sequence[ScanId]) -> list[ScanId]:
    """Scans of ``scans`` with no metadata file (under either name) among ``available``."""
    present = set(available)
    return [s for s in scans if not any(f"{METADATA_SUBDIR}/{n}" in present for n in s.metadata_files)]
