"""The MEI experiment's files under ``<out>/mei/`` (local or s3://, through berg_ray.experiments.outputs).

Per unit ``{scan}/readout-{readout_id:05d}.npy`` (the MEI, uint8 [F, 144, 256]) and, written after it,
``{scan}/readout-{readout_id:05d}.json`` (its record: ids, steps, objective, ...). A unit with both files is done:
a re-run skips it; deleting either file makes the next run compute that unit again. Every file appears whole.
"""

from __future__ import annotations

import io
import json
import re

import numpy as np

from berg_ray.experiments.outputs import ExperimentDir

KIND = "mei"
_UNIT_FILE = re.compile(r"(?P<scan>[^/]+)/readout-(?P<readout>[0-9]+)\.(?P<ext>npy|json)")


def mei_name(scan: str, readout_id: int, ext: str = "npy") -> str:
    """``{scan}/readout-{readout_id:05d}.{ext}`` (ext "npy": the MEI; "json": its record)."""
    return f"{scan}/readout-{int(readout_id):05d}.{ext}"


def done_units(work_dir: ExperimentDir) -> dict[str, set[int]]:
    """scan -> readout ids whose MEI and record are both present (one listing of the location)."""
    seen: dict[tuple[str, int], set[str]] = {}
    for info in work_dir.store.list_files():
        match = _UNIT_FILE.fullmatch(info.name)
        if match:
            seen.setdefault((match["scan"], int(match["readout"])), set()).add(match["ext"])
    done: dict[str, set[int]] = {}
    for (scan, readout), exts in seen.items():
        if exts == {"npy", "json"}:
            done.setdefault(scan, set()).add(readout)
    return done


def write_unit(work_dir: ExperimentDir, scan: str, readout_id: int, video: np.ndarray, record: dict) -> None:
    """Publish the MEI, then its record (the record marks the unit done)."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(video, dtype=np.uint8))
    _put(work_dir, mei_name(scan, readout_id), buffer.getvalue())
    _put(work_dir, mei_name(scan, readout_id, "json"), json.dumps(record, indent=1, sort_keys=True).encode())


def read_mei(work_dir: ExperimentDir, scan: str, readout_id: int) -> np.ndarray:
    """The stored MEI, uint8 [F, 144, 256]."""
    return np.load(io.BytesIO(work_dir.store.read_bytes(mei_name(scan, readout_id))), allow_pickle=False)


def read_record(work_dir: ExperimentDir, scan: str, readout_id: int) -> dict:
    return json.loads(work_dir.store.read_bytes(mei_name(scan, readout_id, "json")))


def _put(work_dir: ExperimentDir, name: str, data: bytes) -> None:
    staged = work_dir.store.staging_path(name)
    try:
        staged.write_bytes(data)
        work_dir.store.publish(staged, name)
    finally:
        staged.unlink(missing_ok=True)
