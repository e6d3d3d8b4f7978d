"""The release manifest written after a download: size and sha256 of every release file.

One function, :func:`write_manifest`, so that the format has a single owner. The file is ``manifest.json`` in
the release root (the model directory, parent of ``encoding_models_weights/`` and ``metadata/``), in the
``berg-ray-manifest`` version 1 format: ``{"format", "version", "algorithm": "sha256", "files": {relative path:
{"size", "sha256"}}}``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from berg_ray.config import RELEASE_MANIFEST_FILE

_CHUNK = 8 * 1024 * 1024


def write_manifest(weights_dir: str | os.PathLike[str]) -> Path:
    """Write the manifest of the release whose ``encoding_models_weights`` directory is ``weights_dir``: every
    non-hidden file under the release root (``weights_dir``'s parent), atomically. Returns its path."""
    root = Path(weights_dir).parent
    files = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and path.name != RELEASE_MANIFEST_FILE and not any(p.startswith(".") for p in relative.parts):
            files[relative.as_posix()] = {"size": path.stat().st_size, "sha256": _sha256(path)}
    document = {"format": "berg-ray-manifest", "version": 1, "algorithm": "sha256", "files": files}
    temp = root / f".{RELEASE_MANIFEST_FILE}.tmp"
    temp.write_text(json.dumps(document, indent=1) + "\n")
    os.replace(temp, root / RELEASE_MANIFEST_FILE)
    return root / RELEASE_MANIFEST_FILE


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
