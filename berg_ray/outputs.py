"""From outputs to analysis: a sweep's rows as arrays with a time axis, and a scan's units as one table.

``load_sweep(path)`` reads a sweep output (local or ``s3://``) written by ``berg-ray sweep`` / ``berg_ray.sweep.run``
and returns a :class:`SweepOutput`: responses per (stimulus, scan) as float32 ``[T, U]`` arrays (``[U]`` for
``--reduce mean``) with their time axis in seconds from the video's start (``--skip-frames`` applied: row t is frame
``skip_frames + t``, shown at ``(skip_frames + t) / 30`` s), and the units table of each scan (column u of the
responses is readout index u). ``units_table(berg_dir, scan)`` gives a scan's metadata as a table, one row per unit
in readout order (the order of every response's unit axis), documented column by column in :data:`UNIT_COLUMNS`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from berg_ray.config import FRAME_RATE_HZ, ScanId
from berg_ray.errors import StorageError
from berg_ray.storage import Store, open_store
from berg_ray.storage.s3 import resolve_s3_options

# Columns of units_table (and where each comes from in the scan's metadata file, berg_dir/.../metadata/*.npy).
UNIT_COLUMNS = {
    "readout_id": "position along every response's unit axis (units.csv readout_id; 0..U-1)",
    "unit_id": "MICrONS unit id within the scan (units.csv unit_id; metadata calcium_2p.unit_id)",
    "area": "visual area: V1, LM, AL or RL ('' where none; metadata calcium_2p.roi.<area>, 0/1 masks)",
    "field": "imaging field, 1-based (0 where none; metadata calcium_2p.field_masks.field_<k>, 0/1 masks)",
    "x": "position of the unit in the MICrONS volume, first axis (metadata calcium_2p.coordinates[:, 0])",
    "y": "second axis (calcium_2p.coordinates[:, 1])",
    "z": "third axis (calcium_2p.coordinates[:, 2])",
    "OSI": "orientation selectivity index measured in vivo (calcium_2p.OSI)",
    "DSI": "direction selectivity index measured in vivo (calcium_2p.DSI)",
    "gOSI": "global (vector) orientation selectivity in vivo (calcium_2p.gOSI)",
    "gDSI": "global (vector) direction selectivity in vivo (calcium_2p.gDSI)",
    "pref_ori": "preferred orientation in vivo, degrees (calcium_2p.pref_ori)",
    "pref_dir": "preferred direction in vivo, degrees (calcium_2p.pref_dir)",
    "cc_abs": "released model accuracy: correlation of prediction and trial-averaged response (encoding_model.cc_abs)",
    "cc_max": "released noise ceiling of the unit (encoding_model.cc_max)",
    "cc_norm": "released cc_abs / cc_max (encoding_model.cc_norm)",
}
_IN_VIVO = ("OSI", "DSI", "gOSI", "gDSI", "pref_ori", "pref_dir")
_ACCURACY = ("cc_abs", "cc_max", "cc_norm")


def units_table(berg_dir: str, scan: str, s3_endpoint_url: str | None = None) -> pd.DataFrame:
    """One row per unit of ``scan`` in readout order (index ``readout_index``), columns :data:`UNIT_COLUMNS`
    (a column is left out where the release's metadata lacks it). ``berg_dir`` may be ``s3://`` (cached)."""
    from berg_ray.checkpoint.release import read_scan_units
    from berg_ray.download import resolve_berg_dir

    units = read_scan_units(resolve_berg_dir(berg_dir, resolve_s3_options(s3_endpoint_url)), ScanId.parse(scan))
    columns: dict[str, Any] = {"readout_id": units.readout_id, "unit_id": units.unit_id, "area": units.area,
                               "field": units.field}
    recorded = units.metadata.get("calcium_2p", {})
    coordinates = recorded.get("coordinates")
    if isinstance(coordinates, np.ndarray) and coordinates.shape == (units.n_units, 3):
        columns |= {"x": coordinates[:, 0], "y": coordinates[:, 1], "z": coordinates[:, 2]}
    for group, names in ((recorded, _IN_VIVO), (units.metadata.get("encoding_model", {}), _ACCURACY)):
        columns |= {n: group[n] for n in names if isinstance(group.get(n), np.ndarray)
                    and group[n].shape == (units.n_units,)}
    table = pd.DataFrame(columns)
    table.index.name = "readout_index"
    table.attrs |= {"scan": str(units.scan_id), "weights": units.weights}
    return table


@dataclass
class SweepOutput:
    """A sweep output read back (see :func:`load_sweep`).

    Attributes:
        uri: where it was read from.
        reduce: "none" (responses [T, U] per frame) or "mean" ([U], the mean over the kept frames).
        skip_frames: frames dropped at each video's start before writing.
        responses: {(stimulus_id, scan): float32 [T, U] or [U]}; column u is readout index u of the scan.
        units: {scan: units table} (readout_index, readout_id, unit_id, area, field) as written by the sweep;
            ``attrs["weights"]`` says whose weights made the responses ("generated weights" or "released weights",
            as ``units_table``; None for outputs written before berg_ray recorded it).
        errors: inputs that failed in the latest run (stimulus_id, input, error_type, error).
        behaviour_given: {(stimulus_id, scan): (perspectives given, modulations given)} from the input files.
        options: the sweep's content options (``_sweep.json``).
    """

    uri: str
    reduce: str
    skip_frames: int
    responses: dict[tuple[str, str], np.ndarray]
    units: dict[str, pd.DataFrame]
    errors: pd.DataFrame
    behaviour_given: dict[tuple[str, str], tuple[bool, bool]] = field(default_factory=dict)
    options: dict = field(repr=False, default_factory=dict)
    frame_rate_hz: float = FRAME_RATE_HZ

    @property
    def stimuli(self) -> list[str]:
        return sorted({stimulus for stimulus, _ in self.responses})

    @property
    def scans(self) -> list[str]:
        return sorted({scan for _, scan in self.responses})

    def times_s(self, stimulus_id: str, scan: str) -> np.ndarray:
        """Time of each response row in seconds from the video's start: (skip_frames + t) / 30 (reduce none)."""
        if self.reduce != "none":
            raise StorageError(f"this sweep was written with --reduce {self.reduce}: one value per unit, no time axis")
        n = self.responses[(stimulus_id, scan)].shape[0]
        return (self.skip_frames + np.arange(n)) / self.frame_rate_hz

    def frame(self, stimulus_id: str, scan: str) -> pd.DataFrame:
        """Responses of one (stimulus, scan) as a table: rows indexed by time (s), columns by unit id."""
        values = self.responses[(stimulus_id, scan)]
        values = values[None] if values.ndim == 1 else values
        index = pd.Index(self.times_s(stimulus_id, scan) if self.reduce == "none" else [np.nan], name="time_s")
        return pd.DataFrame(values, index=index, columns=pd.Index(self.units[scan]["unit_id"], name="unit_id"))


def load_sweep(uri: str, scans: Sequence[str] | None = None, stimuli: Sequence[str] | None = None,
               s3_endpoint_url: str | None = None, anonymous: bool = False) -> SweepOutput:
    """Read a sweep output (a local directory or ``s3://bucket/prefix``): see :class:`SweepOutput`.

    Everything selected is loaded into memory: for a large sweep pass ``scans`` and/or ``stimuli`` (ids) to read
    only those (files of other scans are not read at all).
    """
    from berg_ray.sweep import layout

    store = open_store(uri, resolve_s3_options(s3_endpoint_url, anonymous=anonymous))
    names = {f.name for f in store.list_files()}
    if layout.MANIFEST_FILE not in names:
        raise StorageError(f"{store.uri} is not a sweep output (no {layout.MANIFEST_FILE}); pass the --out directory "
                           "of a finished berg-ray sweep")
    options = json.loads(store.read_bytes(layout.MANIFEST_FILE))
    responses: dict[tuple[str, str], np.ndarray] = {}
    given: dict[tuple[str, str], tuple[bool, bool]] = {}
    wanted_scans = None if scans is None else {str(ScanId.parse(scan)) for scan in scans}
    wanted_stimuli = None if stimuli is None else set(stimuli)
    for name in sorted(n for n in names if layout.is_part_name(n)):
        if wanted_scans is not None and not any(name.startswith(f"{layout.PART_PREFIX}{scan}-")
                                                for scan in wanted_scans):
            continue
        for row in pq.read_table(io.BytesIO(store.read_bytes(name))).to_pylist():
            if wanted_stimuli is None or row["stimulus_id"] in wanted_stimuli:
                key = (row["stimulus_id"], row["train_session"])
                responses[key] = np.asarray(row["responses"], np.float32)
                given[key] = (bool(row.get("perspectives_given")), bool(row.get("modulations_given")))
    units = {}
    for name in sorted(n for n in names if n.startswith(layout.UNITS_DIR + "/")):
        arrow = pq.read_table(io.BytesIO(store.read_bytes(name)))
        scan = name.removeprefix(layout.UNITS_DIR + "/").removesuffix(".parquet")
        units[scan] = arrow.to_pandas().rename(columns={"column_index": "readout_index"}).set_index("readout_index")
        footer = json.loads((arrow.schema.metadata or {}).get(layout.FOOTER_KEY, b"{}"))
        units[scan].attrs |= {"scan": scan, "weights": footer.get("weights")}  # None: written before it was recorded
    errors = (pq.read_table(io.BytesIO(store.read_bytes(layout.ERRORS_FILE))).to_pandas()
              if layout.ERRORS_FILE in names else pd.DataFrame(columns=layout.ERRORS_SCHEMA.names))
    return SweepOutput(store.uri, options.get("reduce", "none"), int(options.get("skip_frames", 0)), responses,
                       units, errors, given, options)
