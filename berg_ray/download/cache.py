"""``resolve_berg_dir``: a berg_dir that may be ``s3://bucket/prefix`` -> a local directory to load from.

A release in S3 is copied once per node into a cache (``$BERG_RAY_CACHE``, default ``$XDG_CACHE_HOME/berg_ray``
or ``~/.cache/berg_ray``), one directory per (endpoint, bucket, prefix). The copy is a :func:`download_release`
of the mirror under its ``flock``: concurrent processes of one node wait for the first, then find every file
current (one LIST, no GET). Each resolution appends a line to ``<entry>/.fetch-log.jsonl`` (host, pid, GETs,
bytes), which shows how often each node fetched the release.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import time
from pathlib import Path

from berg_ray.config import CACHE_ENV, CACHE_FETCH_LOG
from berg_ray.download.sources import MirrorSource
from berg_ray.errors import BergRayError
from berg_ray.storage import S3Options, check_bucket, resolve_s3_options

_RESOLVED: dict[tuple[str, S3Options], Path] = {}  # per process: a release is checked once, not at every load


def cache_root() -> Path:
    """``$BERG_RAY_CACHE``, else ``$XDG_CACHE_HOME/berg_ray``, else ``~/.cache/berg_ray``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "berg_ray"


def cache_entry(source: MirrorSource) -> Path:
    """The cache directory (a berg_dir) of one S3 release: readable name plus a hash of endpoint, bucket, prefix."""
    key = f"{source.options.endpoint_url or 'aws'}|{source.bucket}|{source.prefix}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_root() / "releases" / f"{source.bucket}-{digest}"


def resolve_berg_dir(berg_dir: str | os.PathLike[str], s3: S3Options | None = None) -> Path:
    """The local directory of ``berg_dir``: a local path as it is, an ``s3://bucket/prefix`` release through
    this node's cache (downloaded and verified on first use, under a file lock).

    Args:
        berg_dir: a local BERG directory, or ``s3://bucket/prefix`` of a release in the BERG layout (the
            berg_dir root or the model directory).
        s3: how to reach S3; None: this node's environment and credential chain (``AWS_ENDPOINT_URL``, ...).
    Raises:
        BergRayError: the release cannot be listed, is incomplete, or a file fails verification.
    """
    if not isinstance(berg_dir, str) or not berg_dir.strip().startswith("s3://"):
        return Path(berg_dir)
    uri = berg_dir.strip()
    options = s3 if s3 is not None else resolve_s3_options()
    if (uri, options) in _RESOLVED:
        return _RESOLVED[(uri, options)]
    from berg_ray.download.install import download_release

    bucket, _, prefix = uri[len("s3://"):].partition("/")
    if not bucket or prefix.lower().endswith(".zip"):
        raise BergRayError(f"berg_dir {uri!r} must be s3://bucket/prefix of a release in the BERG layout (an "
                           "archive cannot be loaded: `berg-ray download --source s3://.../X.zip` unpacks it)")
    check_bucket(bucket, uri)
    source = MirrorSource(bucket, prefix if not prefix or prefix.endswith("/") else prefix + "/", options)
    entry = cache_entry(source)
    result = download_release(source, entry, show_progress=False)
    if result.installed:
        print(f"berg_ray: cached {uri} in {entry} ({len(result.installed)} files, {result.fetched / 1e6:.1f} MB)",
              file=sys.stderr, flush=True)
    record = {"time": time.time(), "host": socket.gethostname(), "pid": os.getpid(), "gets": result.gets,
              "bytes": result.fetched, "files": len(result.installed)}
    with open(entry / CACHE_FETCH_LOG, "a") as log:  # one short line per append: O_APPEND keeps lines whole
        log.write(json.dumps(record) + "\n")
    _RESOLVED[(uri, options)] = entry
    return entry
