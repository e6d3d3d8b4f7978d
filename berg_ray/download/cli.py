"""``berg-ray download``: flags -> :func:`~berg_ray.download.download_release`, then the summary."""

from __future__ import annotations

import argparse
from pathlib import Path

from berg_ray.cli.options import add_output_option, add_s3_options, add_sessions_option, add_verbosity_options


def add_download_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``download`` subcommand to the ``berg-ray`` parser."""
    parser = subparsers.add_parser(
        "download", help="fetch the trained release into a BERG directory (resumable, verified)",
        description="Download the trained weights and metadata into DIR in the BERG layout. Sources: berg (BERG's "
                    "public bucket, default), microns (the MICrONS archive, MD5-checked before unpacking; metadata "
                    "from BERG's bucket), s3://bucket/prefix/ (a mirror in the BERG layout) or s3://.../X.zip (an "
                    "archive). Re-running continues an interrupted download; files appear only complete and "
                    "verified.")
    add = parser.add_argument
    add_output_option(parser, "BERG directory to install into (created)", "DIR", type=Path, deprecated=("--to",))
    add("--source", default="berg", metavar="SOURCE",
        help="berg, microns, s3://bucket/prefix/ or s3://bucket/path/X.zip")
    add("--md5", default=None, metavar="HEX",
        help="expected MD5 of an archive source (default: the published one for microns; for an s3:// archive, "
             "its ETag when that is an MD5)")
    add_sessions_option(parser)
    add_s3_options(parser)
    add("--metadata-source", default=None, metavar="SOURCE",
        help="berg or s3://bucket/prefix/: where an archive without metadata files gets them (default for "
             "microns: berg)")
    add("--max-file-bytes", default=None, metavar="SIZE",
        help="refuse a release file larger than SIZE (bytes, or e.g. 64MiB, 2GB; default: each file's own bound, "
             "1.5x its known content (tensors x 4 bytes, metadata numbers x 8 bytes) + 1 MiB)")
    add("--max-total-bytes", default=None, metavar="SIZE",
        help="refuse a download whose release files together exceed SIZE (default: the sum of the bounds of all "
             "files of the whole release)")
    add_verbosity_options(parser, verbose=False)
    parser.set_defaults(func=run_download_command)
    return parser


def run_download_command(ns: argparse.Namespace) -> int:
    """Handler of ``berg-ray download``: 0 when the release is installed (or already was)."""
    from berg_ray.download.bounds import SizeLimits, parse_size
    from berg_ray.download.files import parse_sessions
    from berg_ray.download.install import download_release
    from berg_ray.download.sources import parse_source

    limits = SizeLimits(parse_size(ns.max_file_bytes, "--max-file-bytes"),
                        parse_size(ns.max_total_bytes, "--max-total-bytes"))
    source = parse_source(ns.source, ns.md5, ns.s3_endpoint_url, ns.metadata_source)
    result = download_release(source, ns.out, parse_sessions(ns.sessions), show_progress=not ns.quiet,
                              limits=limits)
    if not ns.quiet:
        print(result.summary(), flush=True)
    return 0
