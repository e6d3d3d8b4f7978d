"""``download_release``: a source -> a verified release in a local BERG directory, resumable and atomic.

Order of work (under a lock on ``DIR``, so two processes never write the same directory):

1. list the source (mirror) or HEAD it (archive) and decide which release files the ``sessions`` need; a file
   already installed from the same object (same ETag and size) is skipped;
2. fetch what is missing into ``DIR/.partial/`` (ranged GETs, continuing partial files of an earlier run),
   verify every file's size and MD5 (ETag, or the archive's checksum before anything is unpacked); sizes are
   bounded first (``bounds``: per file and in total, from the listing or the zip's directory), and a zip member
   that is a link is refused;
3. prove that the release loads (``check``: every file through the release reader, checked against the sha256
   it was verified with); a release that does not load installs nothing and its staged files are deleted;
4. only then move the files into the BERG layout (``os.replace``: each appears complete), record them in
   ``DIR/.berg-ray-download.json`` and write the release manifest (size + sha256 per file).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from berg_ray.checkpoint.manifest import FileDigest, digest_file, write_manifest
from berg_ray.config import DOWNLOAD_STAGING_DIR, DOWNLOAD_STATE_FILE, MANIFEST_FILE, RELEASE_SUBDIR, ScanId
from berg_ray.download import archive as zips
from berg_ray.download.bounds import SizeLimits, check_sizes
from berg_ray.download.check import check_loadable
from berg_ray.download.fetch import (RemoteFile, Transfer, VerificationError, digests, fetch, head_object,
                                     list_objects, s3_client, verify)
from berg_ray.download.files import missing_metadata, mirror_layout_path, scans_in, select
from berg_ray.download.sources import ArchiveSource, MirrorSource, Source
from berg_ray.errors import BergRayError

LOCK_FILE = ".berg-ray-download.lock"


@dataclass
class DownloadResult:
    """What one download did. Bytes: ``fetched`` over the network now, ``resumed`` found in staging."""

    source: str
    berg_dir: Path
    scans: list[str] = field(default_factory=list)
    installed: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    installed_bytes: int = 0
    fetched: int = 0
    resumed: int = 0
    gets: int = 0
    md5_checked: int = 0
    md5_unchecked: int = 0
    crc_checked: int = 0
    archive_check: str = ""
    manifest: Path | None = None
    wall_s: float = 0.0

    def add(self, transfer: Transfer) -> None:
        self.fetched, self.resumed, self.gets = (self.fetched + transfer.fetched, self.resumed + transfer.resumed,
                                                 self.gets + transfer.gets)

    def summary(self) -> str:
        rate = self.fetched / self.wall_s / 1e6 if self.wall_s > 0 else 0.0
        lines = [f"download {self.source} -> {self.berg_dir}",
                 f"  installed: {len(self.installed)} files ({self.installed_bytes / 1e6:.1f} MB), already "
                 f"present: {len(self.present)} files",
                 f"  fetched: {self.fetched / 1e6:.1f} MB in {self.gets} requests"
                 + (f" (+{self.resumed / 1e6:.1f} MB resumed from {DOWNLOAD_STAGING_DIR}/)" if self.resumed else "")
                 + f", {self.wall_s:.1f} s, {rate:.1f} MB/s",
                 f"  verified: size of every file; MD5 of {self.md5_checked} fetched files (their ETag)"
                 + (f", {self.md5_unchecked} without one (multipart ETag)" if self.md5_unchecked else "")
                 + (f"; CRC-32 of {self.crc_checked} archive members" if self.crc_checked else "")
                 + (f"; {self.archive_check}" if self.archive_check else ""),
                 f"  scans: {', '.join(self.scans)}"]
        if self.manifest is not None:
            lines.append(f"  manifest: {self.manifest}")
        lines.append(f"  use it: --berg-dir {self.berg_dir}  (Python: BERG({str(self.berg_dir)!r}))")
        return "\n".join(lines)


def download_release(source: Source, to: str | os.PathLike[str], sessions: Sequence[ScanId] | None = None,
                     show_progress: bool = True, limits: SizeLimits | None = None) -> DownloadResult:
    """Install the release of ``source`` (the ``sessions``' files, None: every scan it has) into ``to``.

    ``limits`` overrides the size bounds derived from the release's files (None: the derived ones).

    Returns:
        The :class:`DownloadResult` (``print(result.summary())`` for the summary).
    Raises:
        BergRayError: the source is unreachable or incomplete (StorageError), a file fails verification
            (VerificationError: also a file over its size bound, a link in a zip, a release that does not
            load); nothing of this run is installed in either case.
    """
    start = time.perf_counter()
    root = Path(to).expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BergRayError(f"cannot create {root}: {exc.strerror or exc}; choose a writable --out") from None
    result = DownloadResult(source.uri, root)
    limits = limits if limits is not None else SizeLimits()
    with locked(root / LOCK_FILE):
        state = _read_state(root)
        if isinstance(source, MirrorSource):
            _from_mirror(source, root, sessions, state, result, show_progress, limits)
        else:
            _from_archive(source, root, sessions, state, result, show_progress, limits)
        if result.installed or not (root / RELEASE_SUBDIR / MANIFEST_FILE).exists():
            result.manifest = write_manifest(root / RELEASE_SUBDIR)
        _clean_staging(root)
    result.wall_s = time.perf_counter() - start
    return result


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (waits for another holder; released when the process dies)."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _from_mirror(source: MirrorSource, root: Path, sessions: Sequence[ScanId] | None, state: dict,
                 result: DownloadResult, show_progress: bool, limits: SizeLimits) -> None:
    client = s3_client(source.options)
    listing = _mirror_listing(client, source)
    paths, scans = select(listing, sessions, source.uri)
    result.scans = [str(s) for s in scans]
    check_sizes({p: listing[p].size for p in paths}, limits, source.uri)
    staged = _fetch_all(client, source, {p: listing[p] for p in paths}, root, state, result, show_progress)
    _prove_loadable(root, paths, staged, state, scans, limits, source.uri)
    _install(root, staged, state, result)


def _mirror_listing(client, source: MirrorSource) -> dict[str, RemoteFile]:
    listing: dict[str, RemoteFile] = {}
    for remote in list_objects(client, source.bucket, source.prefix, source.options):
        path = mirror_layout_path(remote.key)
        if path is not None:
            listing.setdefault(path, remote)
    if not listing:
        raise BergRayError(f"no release files under {source.uri} (endpoint {source.options.endpoint_name}); "
                           f"expected encoding_models_weights/ and metadata/ there or under {RELEASE_SUBDIR}/")
    return listing


def _fetch_all(client, source: MirrorSource, files: dict[str, RemoteFile], root: Path, state: dict,
               result: DownloadResult, show_progress: bool) -> dict[str, dict]:
    """Fetch and verify the files not yet installed; {layout path: record} of the verified staged files."""
    from tqdm import tqdm

    todo = {}
    for path, remote in files.items():
        if _is_installed(root, path, remote, state):
            result.present.append(path)
        else:
            todo[path] = remote
    staged = {}
    with tqdm(total=sum(r.size for r in todo.values()), unit="B", unit_scale=True, unit_divisor=1024,
              desc="download", disable=not show_progress) as bar:
        for path, remote in todo.items():
            local = root / DOWNLOAD_STAGING_DIR / path
            transfer = fetch(client, source.bucket, remote, source.prefix, local, source.options, bar.update)
            bar.update(transfer.resumed)
            result.add(transfer)
            sha256, checked = verify(local, f"{source.uri}{remote.key}", remote.size, remote.md5)
            result.md5_checked += checked
            result.md5_unchecked += not checked
            staged[path] = {"staged": local, "size": remote.size, "etag": remote.etag, "sha256": sha256}
    return staged


def _is_installed(root: Path, path: str, remote: RemoteFile, state: dict) -> bool:
    """The installed file is this object: recorded with its ETag and size, or (no record) its MD5 is the ETag."""
    target = root / RELEASE_SUBDIR / path
    if not target.is_file() or target.stat().st_size != remote.size:
        return False
    record = state["files"].get(path, {})
    if record.get("etag") == remote.etag and record.get("size") == remote.size:
        return True
    if remote.md5 is not None:
        md5, sha256 = digests(target)
        if md5 == remote.md5:
            state["files"][path] = {"size": remote.size, "etag": remote.etag, "sha256": sha256}
            return True
    return False


def _from_archive(source: ArchiveSource, root: Path, sessions: Sequence[ScanId] | None, state: dict,
                  result: DownloadResult, show_progress: bool, limits: SizeLimits) -> None:
    client = s3_client(source.options)
    remote = head_object(client, source.bucket, source.key, source.options)
    record = state.get("archive") or {}
    wanted = None if sessions is None else sorted(map(str, sessions))
    if ((record.get("uri"), record.get("etag"), record.get("size")) == (source.uri, remote.etag, remote.size)
            and _archive_covered(root, record, wanted, state)):
        result.scans, result.present = list(record["scans"]), list(record["files"])
        result.archive_check = "archive already installed (same ETag and size)"
        return
    name = source.key.rpartition("/")[2]
    local = root / DOWNLOAD_STAGING_DIR / "archive" / name
    mirror = MirrorSource(source.bucket, source.key.rpartition("/")[0] + "/", source.options)
    _fetch_with_bar(client, mirror, RemoteFile(name, remote.size, remote.etag), local, result, show_progress)
    expected = source.md5 or remote.md5
    _, checked = verify(local, source.uri, remote.size, expected)
    result.archive_check = (f"archive MD5 {expected} ok" if checked else
                            "archive MD5 NOT checked (no --md5 and a multipart ETag): pass --md5 to check it")
    try:
        paths = _unpack_archive(source, local, f"zip:{remote.etag}", root, sessions, state, result, show_progress,
                                limits)
    except VerificationError:  # a hostile or broken archive: nothing of it stays
        shutil.rmtree(root / DOWNLOAD_STAGING_DIR / "extract", ignore_errors=True)
        _drop_staged(root, [local])
        raise
    state["archive"] = {"uri": source.uri, "etag": remote.etag, "size": remote.size, "scans": result.scans,
                        "all": sessions is None, "files": sorted(paths)}
    _write_state(root, state)
    _drop_staged(root, [local])


def _unpack_archive(source: ArchiveSource, local: Path, etag: str, root: Path, sessions: Sequence[ScanId] | None,
                    state: dict, result: DownloadResult, show_progress: bool, limits: SizeLimits) -> list[str]:
    """Extract the verified zip's release members (bounded, regular files only), fetch the metadata it lacks, prove
    the release loads and install it; returns the layout paths of the run."""
    with zips.open_archive(local, source.uri) as archive:
        members = zips.release_members(archive, source.uri)
        meta_listing = {}
        lacking = missing_metadata(members, sessions if sessions is not None else scans_in(members))
        if lacking:
            if source.metadata is None:
                raise BergRayError(f"{source.uri} holds no metadata for {', '.join(map(str, lacking))}; pass "
                                   "--metadata-source berg (BERG's bucket) or an s3:// mirror with metadata/")
            meta_client = s3_client(source.metadata.options)
            meta_listing = {p: r for p, r in _mirror_listing(meta_client, source.metadata).items()
                            if p.startswith("metadata/") and p not in members}
        paths, scans = select({**meta_listing, **members}, sessions, source.uri)
        result.scans = [str(s) for s in scans]
        check_sizes({p: members[p].file_size if p in members else meta_listing[p].size for p in paths}, limits,
                    source.uri)
        staged = _extract_members(archive, {p: members[p] for p in paths if p in members}, root,
                                  etag, source.uri)
        result.crc_checked += len(staged)
    if meta_listing:
        needed = {p: meta_listing[p] for p in paths if p in meta_listing}
        staged.update(_fetch_all(meta_client, source.metadata, needed, root, state, result, show_progress))
    _prove_loadable(root, paths, staged, state, scans, limits, source.uri)
    _install(root, staged, state, result)
    result.present = [p for p in paths if p not in staged]
    return paths


def _prove_loadable(root: Path, paths: Sequence[str], staged: dict[str, dict], state: dict, scans: Sequence[ScanId],
                    limits: SizeLimits, where: str) -> None:
    """Check that the release of ``paths`` (staged or installed) loads before anything staged is installed; on
    failure the staged files are deleted. Nothing new staged: what is installed was proven when it was installed."""
    if not staged:
        return
    files, digests_of = {}, {}
    for path in paths:
        record = staged.get(path) or state["files"].get(path, {})
        files[path] = staged[path]["staged"] if path in staged else root / RELEASE_SUBDIR / path
        digests_of[path] = (FileDigest(record["size"], record["sha256"]) if "sha256" in record else
                            digest_file(files[path]))
    try:
        check_loadable(root, files, digests_of, scans, limits, where)
    except VerificationError:
        _drop_staged(root, [record["staged"] for record in staged.values()])
        raise


def _drop_staged(root: Path, files: Sequence[Path]) -> None:
    """Delete staged files (and their ``.source`` sidecars), then the staging folder if it is left empty."""
    for path in files:
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".source").unlink(missing_ok=True)
    _clean_staging(root)


def _extract_members(archive, members: dict, root: Path, etag: str, uri: str) -> dict[str, dict]:
    """Extract the archive's release members into staging (CRC-32 checked); {layout path: record}."""
    staged = {}
    for path, info in members.items():
        target = root / DOWNLOAD_STAGING_DIR / "extract" / path
        staged[path] = {"staged": target, "size": info.file_size, "etag": etag,
                        "sha256": zips.extract(archive, info, target, uri)}
    return staged


def _archive_covered(root: Path, record: dict, wanted: list[str] | None, state: dict) -> bool:
    if wanted is None and not record.get("all"):
        return False
    if wanted is not None and not set(wanted) <= set(record.get("scans", [])):
        return False
    return all((root / RELEASE_SUBDIR / p).is_file() and (root / RELEASE_SUBDIR / p).stat().st_size ==
               state["files"].get(p, {}).get("size") for p in record.get("files", []))


def _fetch_with_bar(client, mirror: MirrorSource, remote: RemoteFile, local: Path, result: DownloadResult,
                    show_progress: bool) -> None:
    from tqdm import tqdm

    with tqdm(total=remote.size, unit="B", unit_scale=True, unit_divisor=1024, desc="download",
              disable=not show_progress) as bar:
        transfer = fetch(client, mirror.bucket, remote, mirror.prefix, local, mirror.options, bar.update)
        bar.update(transfer.resumed)
    result.add(transfer)


def _install(root: Path, staged: dict[str, dict], state: dict, result: DownloadResult) -> None:
    """Move every verified staged file into the layout (each appears complete) and record it."""
    for path, record in staged.items():
        target = root / RELEASE_SUBDIR / path
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(record["staged"], target)
        record["staged"].with_name(record["staged"].name + ".source").unlink(missing_ok=True)
        state["files"][path] = {"size": record["size"], "etag": record["etag"], "sha256": record["sha256"]}
        result.installed.append(path)
        result.installed_bytes += record["size"]
    _write_state(root, state)


def _read_state(root: Path) -> dict:
    try:
        state = json.loads((root / DOWNLOAD_STATE_FILE).read_text())
    except (OSError, ValueError):
        return {"files": {}}
    return state if isinstance(state, dict) and isinstance(state.get("files"), dict) else {"files": {}}


def _write_state(root: Path, state: dict) -> None:
    temp = root / f"{DOWNLOAD_STATE_FILE}.tmp"
    temp.write_text(json.dumps(state, indent=1, sort_keys=True))
    os.replace(temp, root / DOWNLOAD_STATE_FILE)


def _clean_staging(root: Path) -> None:
    """Remove ``.partial/`` once it holds no partial file (only empty folders)."""
    staging = root / DOWNLOAD_STAGING_DIR
    if staging.is_dir() and not any(p.is_file() for p in staging.rglob("*")):
        shutil.rmtree(staging, ignore_errors=True)
