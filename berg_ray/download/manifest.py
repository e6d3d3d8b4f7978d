"""The release manifest written after a download: size and sha256 of every release file.

One function, :func:`write_manifest`, so that the format has a single owner.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from berg_ray.config import METADATA_SUBDIR, RELEASE_MANIFEST_FILE

_CHUNK = 1024 * 1024


def write_manifest(weights_dir: str | os.PathLike[str]) -> Path:
    """Write ``weights_dir/manifest.json``: ``{"files": {name: {"size": bytes, "sha256": hex}}}`` for every file
    of the release (``encoding_models_weights/*`` and the sibling ``metadata/*``; names relative to the model
    directory, '/'-separated), atomically. Returns its path."""
    weights = Path(weights_dir)
    model_dir = weights.parent
    files = {}
    for folder in (weights, model_dir / METADATA_SUBDIR):
        for path in sorted(folder.glob("*")) if folder.is_dir() else []:
            if path.is_file() and path.name != RELEASE_MANIFEST_FILE and not path.name.startswith("."):
                files[path.relative_to(model_dir).as_posix()] = {"size": path.stat().st_size, "sha256": _sha256(path)}
    target = weights / RELEASE_MANIFEST_FILE
    temp = weights / f".{RELEASE_MANIFEST_FILE}.tmp"
    temp.write_text(json.dumps({"files": files}, indent=1, sort_keys=True) + "\n")
    os.replace(temp, target)
    return target


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
