"""The trained release, fetched and verified: ``berg-ray download`` and ``--berg-dir s3://...``.

- :func:`download_release` (``berg-ray download``): a source (BERG's public bucket, the MICrONS archive, an
  ``s3://`` mirror in the BERG layout or an ``s3://.../X.zip`` archive) -> a local BERG directory; resumable
  (partial files wait in ``DIR/.partial/``, ranged GETs continue them), atomic (files appear only complete and
  verified), checked (size, and MD5 where the ETag is one or the archive's checksum is known), bounded (each file
  and their sum by :class:`SizeLimits`, derived from the release's files) and proven loadable before it succeeds.
- :func:`resolve_berg_dir`: a ``berg_dir`` that may be ``s3://bucket/prefix`` -> a local directory (a node-local
  cache filled once under a file lock).
"""

from berg_ray.download.bounds import SizeLimits
from berg_ray.download.cache import resolve_berg_dir
from berg_ray.download.install import DownloadResult, download_release
from berg_ray.download.sources import parse_source

__all__ = ["DownloadResult", "SizeLimits", "download_release", "parse_source", "resolve_berg_dir"]
