"""Output layout of a sweep: Parquet schemas (defined once, checked before every write) and file names.

```
OUTPUT/
  part-{scan}-{hash16}.parquet   responses: one row per (stimulus, scan); one file per (micro-batch, scan)
  _units/{scan}.parquet          column index of `responses` -> readout_id, unit_id, area, field (footer: weights)
  _errors/errors.parquet         inputs that failed in the latest run: stimulus_id, input, error_type, error
  _sweep.json                    options that fix the content (reduce, skip_frames, precision); re-runs check them
  _tmp/                          local staging (S3 outputs stage on the worker's local disk instead)
  _lease.json                    held by the running sweep (lease.py); absent when none runs
  _berg_ray.lock                 local outputs: flock file of the lease's compare-and-swap (storage.py)
```
Each row also says whether its input carried behaviour (``perspectives_given``, ``modulations_given``; issue 17).
pyarrow and pandas skip names starting with ``_`` or ``.``, so ``pq.read_table(OUTPUT)`` reads exactly the
responses. ``hash16`` is a SHA-256 prefix of the scan, the stimulus ids of the micro-batch and the options, so a
retried micro-batch rewrites the same name with the same content. Every part file also lists its scan and
stimulus ids in its footer metadata (key ``berg_ray.sweep``), from which a re-run learns what is done, and the
size and version of each row's input file, from which it learns which inputs changed since.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from berg_ray.config import SWEEP_FORMAT_VERSION, ScanId
from berg_ray.errors import BergRayError, StorageError
from berg_ray.validation.names import is_utf8, printable_name
from berg_ray.validation.redact import redact_credentials
from berg_ray.storage import Store
from berg_ray.units import ScanUnits

PART_PREFIX, PART_SUFFIX = "part-", ".parquet"
UNITS_DIR, ERRORS_FILE, MANIFEST_FILE = "_units", "_errors/errors.parquet", "_sweep.json"
FOOTER_KEY = b"berg_ray.sweep"

_KEY_FIELDS = [pa.field("stimulus_id", pa.string(), nullable=False),
               pa.field("train_session", pa.string(), nullable=False),
               pa.field("n_frames", pa.int32(), nullable=False)]
_GIVEN_FIELDS = [pa.field("perspectives_given", pa.bool_(), nullable=False),  # the input file carried behaviour
                 pa.field("modulations_given", pa.bool_(), nullable=False)]  # (else: the model's default, 0)
RESPONSES_SCHEMAS = {
    "none": pa.schema(_KEY_FIELDS + _GIVEN_FIELDS
                      + [pa.field("responses", pa.list_(pa.list_(pa.float32())), nullable=False)]),
    "mean": pa.schema(_KEY_FIELDS + _GIVEN_FIELDS + [pa.field("responses", pa.list_(pa.float32()), nullable=False)]),
}
UNITS_SCHEMA = pa.schema([pa.field("column_index", pa.int32(), nullable=False),
                          pa.field("readout_id", pa.int64(), nullable=False),
                          pa.field("unit_id", pa.int64(), nullable=False),
                          pa.field("area", pa.string(), nullable=False),
                          pa.field("field", pa.int64(), nullable=False)])
ERRORS_SCHEMA = pa.schema([pa.field("stimulus_id", pa.string()), pa.field("input", pa.string()),
                           pa.field("error_type", pa.string()), pa.field("error", pa.string())])


LEGACY_CONTENT_KEY = "resize"  # recorded in _sweep.json before it was known not to change rows


def content_options(reduce: str, skip_frames: int, precision: str) -> dict:
    """The options that change what a row contains (batch size, chunking and actors do not).

    ``resize`` is not one: a row of an input of 144x256 frames is the same with or without it (resizing to the
    same size is the identity), and an input of another size has a row only when resized (without ``resize`` it
    is an error and has none). So a re-run with ``--resize`` after frame-size errors computes just the inputs that
    failed, beside the rows already written, and every row of an output means the same. Manifests written before
    (which record ``resize``) are read with that key ignored (``check_manifest``).
    """
    return {"format": SWEEP_FORMAT_VERSION, "reduce": reduce, "skip_frames": skip_frames, "precision": precision}


def part_name(scan_id: str, stimulus_ids: Sequence[str], options: dict) -> str:
    """Deterministic file name of one micro-batch of one scan."""
    payload = json.dumps({"scan": scan_id, "stimuli": list(stimulus_ids), "options": options}, sort_keys=True)
    return f"{PART_PREFIX}{scan_id}-{hashlib.sha256(payload.encode()).hexdigest()[:16]}{PART_SUFFIX}"


def is_part_name(name: str) -> bool:
    return "/" not in name and name.startswith(PART_PREFIX) and name.endswith(PART_SUFFIX)


def responses_table(stimulus_ids: Sequence[str], scan_id: str, n_frames: Sequence[int],
                    responses: Sequence[np.ndarray], reduce: str, perspectives_given: Sequence[bool] | None = None,
                    modulations_given: Sequence[bool] | None = None) -> pa.Table:
    """Rows of one micro-batch of one scan.

    Args:
        stimulus_ids: (B,) ids.
        scan_id: canonical scan id.
        n_frames: (B,) frames each row covers (after skip_frames).
        responses: B float32 arrays, (T_b, N) with reduce "none" or (N,) with reduce "mean".
        reduce: "none" or "mean".
        perspectives_given, modulations_given: (B,) whether the input carried that behaviour (None: none did).

    Returns:
        A table with schema ``RESPONSES_SCHEMAS[reduce]``.
    """
    flat = pa.array(np.concatenate([np.ascontiguousarray(r, np.float32).ravel() for r in responses]), pa.float32())
    n_units = responses[0].shape[-1]
    rows_per_item = [r.shape[0] if reduce == "none" else 1 for r in responses]
    inner = pa.ListArray.from_arrays(pa.array(np.arange(sum(rows_per_item) + 1) * n_units, pa.int32()), flat)
    if reduce == "none":
        column = pa.ListArray.from_arrays(pa.array(np.concatenate([[0], np.cumsum(rows_per_item)]), pa.int32()),
                                          inner)
    else:
        column = inner
    given = [pa.array([False] * len(responses) if flags is None else [bool(f) for f in flags], pa.bool_())
             for flags in (perspectives_given, modulations_given)]
    return pa.table([pa.array(list(stimulus_ids), pa.string()), pa.array([scan_id] * len(responses), pa.string()),
                     pa.array(list(n_frames), pa.int32()), *given, column], schema=RESPONSES_SCHEMAS[reduce])


def write_table(store: Store, name: str, table: pa.Table, schema: pa.Schema, footer: dict | None = None) -> int:
    """Check ``table`` against ``schema``, write it to a staging file and publish it atomically; returns bytes."""
    if not table.schema.equals(schema):
        raise BergRayError(f"internal: table for {name} has schema {table.schema}, expected {schema}")
    if footer is not None:
        table = table.replace_schema_metadata({FOOTER_KEY: json.dumps(footer).encode()})
    staged = store.staging_path(name)
    try:
        pq.write_table(table, staged, compression="snappy", use_dictionary=["stimulus_id", "train_session", "area"],
                       write_statistics=["stimulus_id", "train_session", "n_frames"])
        size = staged.stat().st_size
        store.publish(staged, name)
    finally:
        staged.unlink(missing_ok=True)
    return size


def units_table(units: ScanUnits) -> pa.Table:
    """Column index of ``responses`` -> unit identity, for one scan."""
    return pa.table([pa.array(np.arange(units.n_units), pa.int32()), pa.array(units.readout_id, pa.int64()),
                     pa.array(units.unit_id, pa.int64()), pa.array(units.area.tolist(), pa.string()),
                     pa.array(units.field, pa.int64())], schema=UNITS_SCHEMA)


def units_footer(units: ScanUnits) -> dict:
    """Footer metadata of a units file: the scan and whose weights made its responses ("generated weights" or
    "released weights", ``ScanUnits.weights``), so figures of the output can say so without the release."""
    return {"scan": str(units.scan_id), "weights": units.weights}


def units_name(scan_id: ScanId | str) -> str:
    return f"{UNITS_DIR}/{scan_id}.parquet"


def input_error(store: Store, stimulus_id: str, name: str, exc: Exception, error_type: str | None = None) -> dict:
    """A row of the errors table: the input, the error type (default: the exception's class) and a one-line
    message naming the file.

    ``stimulus_id`` and ``input`` keep the exact name (as in the responses table) unless it is not valid UTF-8
    (Parquet and JSON cannot hold it): then its undecodable bytes are escaped (``berg_ray.validation.names``).
    The message always shows names with control characters escaped, so it cannot forge lines where it is printed.
    """
    message = (str(exc) if isinstance(exc, BergRayError)
               else redact_credentials(f"{name}: {type(exc).__name__}: {exc}"))
    uri = store.uri_of(name)
    return {"stimulus_id": stimulus_id if is_utf8(stimulus_id) else printable_name(stimulus_id),
            "input": uri if is_utf8(uri) else printable_name(uri), "error_type": error_type or type(exc).__name__,
            "error": printable_name(message)}


def errors_table(errors: Sequence[dict]) -> pa.Table:
    """Table of failed inputs: dicts with stimulus_id, input (URI), error_type (exception class) and error."""
    return pa.Table.from_pylist([{k: e.get(k) for k in ERRORS_SCHEMA.names} for e in errors], schema=ERRORS_SCHEMA)


def check_manifest(store: Store, options: dict) -> bool:
    """Compare ``options`` with the output's ``_sweep.json``; True if the manifest must still be written. A
    ``resize`` key (manifests of earlier versions) is ignored: it does not change any row (``content_options``).

    Raises:
        StorageError: the output holds a sweep made with other content options, or a damaged manifest.
    """
    if not any(info.name == MANIFEST_FILE for info in store.list_files(recursive=False)):
        return True
    try:
        found = json.loads(store.read_bytes(MANIFEST_FILE))
    except (ValueError, UnicodeDecodeError) as exc:
        found = exc
    if not isinstance(found, dict):
        raise StorageError(f"{store.uri_of(MANIFEST_FILE)} is damaged (not a JSON object: {found}); it records the "
                           f"options {options} of this output's rows: restore it, or write it with those options "
                           f"if you know them, or write to a new --out")
    if found.get("format") != options.get("format"):
        raise StorageError(f"{store.uri} holds a sweep of output format {found.get('format')}, written by another "
                           f"version of berg_ray; this one writes format {options.get('format')} (other columns), "
                           f"and one output holds one format: write to a new --out")
    found = {key: value for key, value in found.items() if key != LEGACY_CONTENT_KEY}
    if found != options:
        raise StorageError(f"{store.uri} already holds a sweep made with {found}, but this run asks for {options}; "
                           f"re-run with the same --reduce/--skip-frames/--precision or write to a new --out")
    return False


def write_manifest(store: Store, options: dict) -> None:
    staged = store.staging_path(MANIFEST_FILE)
    Path(staged).write_text(json.dumps(options, sort_keys=True, indent=1))
    store.publish(staged, MANIFEST_FILE)


def read_footers(store: Store, part_names: Sequence[str]) -> dict[str, dict]:
    """The ``berg_ray.sweep`` footer of each published part file: scan, stimulus_ids, options and (since the
    changed-input check) ``inputs``: stimulus_id -> [size, version] of the input each row was computed from.

    Raises:
        StorageError: a part file that is not a readable Parquet file of a sweep (e.g. zero-length), naming it.
    """
    from concurrent.futures import ThreadPoolExecutor

    def footer(name: str) -> dict:
        fs, path = store.arrow_path(name)
        try:
            metadata = pq.read_schema(path, filesystem=fs).metadata or {}
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise StorageError(f"{store.uri_of(name)} is not a readable Parquet file ({exc}); it was damaged "
                               f"outside berg_ray (sweeps publish complete files only): delete it and re-run, "
                               f"which recomputes its rows") from None
        if FOOTER_KEY not in metadata:
            raise StorageError(f"{store.uri_of(name)} is not a berg_ray sweep file (no {FOOTER_KEY.decode()} "
                               f"metadata); remove it or write to a new --out")
        return json.loads(metadata[FOOTER_KEY])

    with ThreadPoolExecutor(max_workers=16) as pool:
        return dict(zip(part_names, pool.map(footer, part_names)))


def done_set(footers: Iterable[dict]) -> dict[str, set[str]]:
    """Stimulus ids written per scan, from part file footers."""
    done: dict[str, set[str]] = {}
    for info in footers:
        done.setdefault(info["scan"], set()).update(info["stimulus_ids"])
    return done


def read_done(store: Store, part_names: Sequence[str]) -> dict[str, set[str]]:
    """Stimulus ids already written per scan, from the footers of the published part files."""
    return done_set(read_footers(store, part_names).values())
