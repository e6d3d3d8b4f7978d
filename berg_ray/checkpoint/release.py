"""Reader of the published release (wang2025-model-spec.md §1.1) in the BERG directory layout.

``berg_dir/encoding_models/modality-calcium_2p/train_dataset-wang_2025/model-3DCNN/`` holds
``encoding_models_weights/`` (params_core.pt, params_{session}_{scan}.pt, scans.csv, units.csv) and
``metadata/session-{s}_scan-{c}_metadata.npy``. Every file is read strictly: a missing file, a corrupt file, a
missing or unknown key, a wrong dtype, shape or layout, or a NaN/inf weight fails with a ReleaseFormatError naming
the file and the key. Each file's bytes are read once and checked against the release's ``manifest.json`` when it
lists the file (``berg_ray.checkpoint.manifest``); ``.pt`` files are also checked against the CRC-32 their zip
container stores for every tensor, so damage inside a tensor is caught without a manifest too.
"""

from __future__ import annotations

import csv
import io
import os
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from berg_ray.checkpoint.keys import Shape, core_key_shapes, expected_dtype, scan_key_shapes
from berg_ray.checkpoint.manifest import read_verified
from berg_ray.checkpoint.metadata import read_scan_metadata
from berg_ray.config import METADATA_SUBDIR, RELEASE_SUBDIR, ROIS, WEIGHTS_SUBDIR, ScanId
from berg_ray.runtime.device import resolve_device
from berg_ray.errors import InvalidSessionError, ReleaseFormatError, ScanNotAvailableError
from berg_ray.model.device_plan import DEFAULT_KERNELS, check_kernels
from berg_ray.model.network import EncodingModel
from berg_ray.runtime.precision import DEFAULT_PRECISION, check_precision
from berg_ray.runtime.threads import keep_freed_heap
from berg_ray.model.readout import Readout
from berg_ray.units import ScanUnits, take_per_unit

CORE_FILE, SCANS_FILE, UNITS_FILE = "params_core.pt", "scans.csv", "units.csv"


def weights_dir(berg_dir: str | os.PathLike[str]) -> Path:
    """The release's ``encoding_models_weights`` directory; ReleaseFormatError if it does not exist."""
    path = Path(berg_dir) / RELEASE_SUBDIR / WEIGHTS_SUBDIR
    if not path.is_dir():
        raise ReleaseFormatError(
            f"{path} does not exist: berg_dir {str(berg_dir)!r} must contain {RELEASE_SUBDIR}/{WEIGHTS_SUBDIR}/ "
            "(the BERG layout; `berg-ray demo-release --out DIR` writes a generated one)"
        )
    return path


def metadata_path(berg_dir: str | os.PathLike[str], scan_id: ScanId) -> Path:
    """The scan's metadata file: ``session-8_scan-5_metadata.npy``, else ``session8_scan5_metadata.npy`` if only
    that one exists (both names are in use); the canonical path when neither exists (errors name it)."""
    folder = Path(berg_dir) / RELEASE_SUBDIR / METADATA_SUBDIR
    return next((folder / n for n in scan_id.metadata_files if (folder / n).is_file()), folder / scan_id.metadata_file)


def read_release_file(path: Path) -> bytes:
    """The bytes of one release file, checked against the release's manifest when it lists the file.

    Every release file sits one directory below the release root (``encoding_models_weights/`` or ``metadata/``),
    where the manifest lives; a file elsewhere, or a release without a manifest, is read unverified.
    """
    if not path.is_file():
        raise ReleaseFormatError(f"{path}: file not found; the release needs it (re-download or re-extract it)")
    root = path.parent.parent
    try:
        return read_verified(root, path.relative_to(root).as_posix())
    except OSError as exc:
        raise ReleaseFormatError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def read_scan_table(berg_dir: str | os.PathLike[str]) -> dict[ScanId, int]:
    """scans.csv as {scan: number of units U}; unknown scans in the file are an error."""
    path = weights_dir(berg_dir) / SCANS_FILE
    table: dict[ScanId, int] = {}
    for line, row in _read_csv(path, ("session", "scan_idx", "units")):
        scan_id = _scan_of(row, path, line)
        units = _int_field(row, "units", path, line)
        if units <= 0 or scan_id in table:
            raise ReleaseFormatError(f"{path} line {line}: duplicate scan or non-positive unit count {units}")
        table[scan_id] = units
    return table


def available_scans(berg_dir: str | os.PathLike[str]) -> list[ScanId]:
    """Scans listed in scans.csv whose params file is present, sorted."""
    directory = weights_dir(berg_dir)
    return sorted(s for s in read_scan_table(berg_dir) if (directory / s.weights_file).is_file())


def read_state_dict(path: Path, shapes: Mapping[str, Shape]) -> dict[str, Tensor]:
    """Load one ``.pt`` file with weights_only=True and check it holds exactly ``shapes`` (keys, shapes, dtypes),
    dense tensors only, every float finite; its bytes are verified first (manifest, zip CRC-32s)."""
    data = read_release_file(path)
    _check_zip_crcs(data, path)
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, wrong format, pickle refused: all mean "corrupt" to the caller
        raise ReleaseFormatError(f"{path}: cannot be loaded as a torch state dict ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else ''}); the file is corrupt or "
                                 "truncated, re-download it") from None
    if not isinstance(state, Mapping):
        raise ReleaseFormatError(f"{path}: expected a dict of tensors, got {type(state).__name__}")
    missing = sorted(set(shapes) - set(state))
    unknown = sorted(set(state) - set(shapes))
    if missing or unknown:
        raise ReleaseFormatError(f"{path}: missing keys {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                                 f"unknown keys {unknown[:5]}{'...' if len(unknown) > 5 else ''}")
    for key, shape in shapes.items():
        tensor = state[key]
        if not isinstance(tensor, Tensor) or tuple(tensor.shape) != shape or tensor.dtype != expected_dtype(key):
            found = f"{tuple(tensor.shape)} {tensor.dtype}" if isinstance(tensor, Tensor) else type(tensor).__name__
            raise ReleaseFormatError(f"{path}: key {key!r} is {found}, expected {shape} {expected_dtype(key)}")
        _check_values(tensor, key, path)
    return dict(state)


def _check_zip_crcs(data: bytes, path: Path) -> None:
    """Compare every member of a torch zip file with the CRC-32 stored for it (legacy non-zip files: skipped)."""
    buffer = io.BytesIO(data)
    if not zipfile.is_zipfile(buffer):
        return
    try:
        with zipfile.ZipFile(buffer) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ReleaseFormatError(f"{path}: corrupt zip container ({exc}); re-download it") from None
    if bad is not None:
        raise ReleaseFormatError(f"{path}: member {bad!r} fails its CRC-32 check: the file is damaged, "
                                 "re-download it")


def _check_values(tensor: Tensor, key: str, path: Path) -> None:
    """A dense CPU tensor with finite values; meta, sparse and quantized tensors have no usable weights."""
    kind = "meta" if tensor.is_meta else "quantized" if tensor.is_quantized else \
        "sparse" if tensor.layout != torch.strided else None
    if kind is not None:
        raise ReleaseFormatError(f"{path}: key {key!r} is a {kind} tensor ({tensor.layout}); the release stores "
                                 "dense tensors: the file is corrupt or not a release file, re-download it")
    if tensor.is_floating_point():
        bad = int((~torch.isfinite(tensor)).sum())
        if bad:
            raise ReleaseFormatError(f"{path}: key {key!r} holds {bad} NaN or infinite value(s) (of "
                                     f"{tensor.numel()}); the weights are damaged, re-download the file")


def read_scan_params(berg_dir: str | os.PathLike[str], scan_id: ScanId, n_units: int) -> dict[str, Tensor]:
    """The per-scan state dict of ``scan_id`` (88 keys), checked against U = ``n_units``."""
    path = weights_dir(berg_dir) / scan_id.weights_file
    if not path.is_file():
        raise ScanNotAvailableError(
            f"{scan_id} is a valid scan but its weights {path.name} are not in {path.parent}; "
            f"available here: {', '.join(map(str, available_scans(berg_dir))) or 'none'}"
        )
    return read_state_dict(path, scan_key_shapes(n_units))


def load_model(berg_dir: str | os.PathLike[str], scan_ids: Sequence[ScanId | str] | None = None,
               device: str | torch.device = "cpu", precision: str = DEFAULT_PRECISION,
               kernels: str = DEFAULT_KERNELS) -> EncodingModel:
    """Build the model from a release: the shared core plus the front ends and readouts of ``scan_ids``.

    Args:
        berg_dir: BERG directory.
        scan_ids: scans to load (ScanId or "session-8_scan-5"); None loads every scan whose weights are present.
        device: where the model runs ("auto", "cpu", "cuda", ...).
        precision: "float32" (default), "tf32" or "bfloat16" (berg_ray.runtime.precision); checked against the device
            before any file is read.
        kernels: "torch" (default) or "triton" (fused kernels, CUDA only; berg_ray.model.device_plan), likewise
            checked first.
    """
    resolved = resolve_device(device)
    check_precision(precision, resolved)
    check_kernels(kernels, resolved)
    keep_freed_heap()  # this process runs the model: reuse its freed activations (not in decode-only processes)
    table = read_scan_table(berg_dir)
    wanted = available_scans(berg_dir) if scan_ids is None else [ScanId.parse(s) for s in scan_ids]
    if not wanted:
        raise ScanNotAvailableError(f"no scan weights found in {weights_dir(berg_dir)}")
    scan_params = {str(scan_id): read_scan_params(berg_dir, scan_id, _listed_units(table, scan_id, berg_dir))
                   for scan_id in dict.fromkeys(wanted)}
    core_params = read_state_dict(weights_dir(berg_dir) / CORE_FILE, core_key_shapes())
    return EncodingModel(core_params, scan_params).to(resolved).set_precision(precision).set_kernels(kernels)


def load_readout(berg_dir: str | os.PathLike[str], scan_id: ScanId | str) -> Readout:
    """One scan's readout alone, on CPU: its per-scan file is read and checked, the core is never read or built.

    This is what a readout head needs (a few MB instead of the whole network); it computes exactly what
    ``EncodingModel.forward_readout`` computes for that scan (the same Readout module).
    """
    scan_id = ScanId.parse(scan_id)
    params = read_scan_params(berg_dir, scan_id, _listed_units(read_scan_table(berg_dir), scan_id, berg_dir))
    with torch.no_grad():
        readout = Readout(params)
    return readout.requires_grad_(False).eval()


def _listed_units(table: Mapping[ScanId, int], scan_id: ScanId, berg_dir: str | os.PathLike[str]) -> int:
    if scan_id not in table:
        raise ScanNotAvailableError(f"{scan_id} is a valid scan but is not listed in {SCANS_FILE} of {berg_dir}")
    return table[scan_id]


def read_unit_ids(berg_dir: str | os.PathLike[str], scan_id: ScanId, n_units: int) -> np.ndarray:
    """unit_id of each readout index 0..U-1 of ``scan_id`` from units.csv (int64, (U,)).

    The scan's rows are counted before anything of size U is allocated, so a wrong count in scans.csv fails fast.
    """
    path = weights_dir(berg_dir) / UNITS_FILE
    rows = [(line, row) for line, row in _read_csv(path, ("session", "scan_idx", "readout_id", "unit_id"))
            if _scan_of(row, path, line, check=False) == scan_id]
    if len(rows) != n_units:
        raise ReleaseFormatError(f"{weights_dir(berg_dir) / SCANS_FILE} says {n_units} units for {scan_id} but "
                                 f"{path} lists {len(rows)}; the release files do not belong together (re-download "
                                 "them)")
    unit_ids = np.full(n_units, -1, dtype=np.int64)
    for line, row in rows:
        readout = _int_field(row, "readout_id", path, line)
        if not 0 <= readout < n_units or unit_ids[readout] >= 0:
            raise ReleaseFormatError(f"{path} line {line}: readout_id {readout} out of 0..{n_units - 1} or repeated")
        unit_ids[readout] = _int_field(row, "unit_id", path, line)
    if (unit_ids < 0).any():
        raise ReleaseFormatError(f"{path}: {scan_id} lists {int((unit_ids >= 0).sum())} readout ids, expected "
                                 f"{n_units} (0..{n_units - 1})")
    return unit_ids


def read_scan_units(berg_dir: str | os.PathLike[str], scan_id: ScanId | str) -> ScanUnits:
    """Unit tables of one scan in readout order: ids from units.csv, area and field from the metadata file."""
    scan_id = ScanId.parse(scan_id)
    table = read_scan_table(berg_dir)
    if scan_id not in table:
        raise ScanNotAvailableError(f"{scan_id} is a valid scan but is not listed in {SCANS_FILE} of {berg_dir}")
    unit_ids = read_unit_ids(berg_dir, scan_id, table[scan_id])
    path = metadata_path(berg_dir, scan_id)
    metadata = read_scan_metadata(path, read_release_file(path))
    described = _described_scan(metadata["calcium_2p"])
    if described != scan_id:
        raise ReleaseFormatError(f"{path}: describes {described} (calcium_2p.session/scan), not {scan_id}; "
                                 "the file belongs to another scan (re-download it)")
    metadata = _metadata_in_readout_order(metadata, unit_ids, path)
    calcium = metadata["calcium_2p"]
    area = np.full(unit_ids.shape, "", dtype=object)
    for roi in ROIS:
        area[np.asarray(calcium["roi"][roi]).astype(bool)] = roi
    fields = sorted(int(k.split("_")[1]) for k in calcium["field_masks"])
    field = np.zeros(unit_ids.shape, dtype=np.int64)
    for number in fields:
        field[np.asarray(calcium["field_masks"][f"field_{number}"]).astype(bool)] = number
    return ScanUnits(scan_id, np.arange(unit_ids.shape[0], dtype=np.int64), unit_ids, area.astype(str), field,
                     tuple(fields), metadata)


def _metadata_in_readout_order(metadata: dict, unit_ids: np.ndarray, path: Path) -> dict:
    """Reorder every per-unit metadata array so entry u belongs to readout index u."""
    meta_ids = np.asarray(metadata["calcium_2p"]["unit_id"])
    if meta_ids.shape != unit_ids.shape or not np.array_equal(np.sort(meta_ids), np.sort(unit_ids)):
        raise ReleaseFormatError(f"{path}: calcium_2p.unit_id does not hold the {unit_ids.shape[0]} units of "
                                 f"{UNITS_FILE} for this scan")
    if np.array_equal(meta_ids, unit_ids):
        return metadata
    order = np.argsort(meta_ids)[np.searchsorted(np.sort(meta_ids), unit_ids)]
    return take_per_unit(metadata, order, unit_ids.shape[0])


def _described_scan(calcium: Mapping) -> ScanId | str:
    """The scan a metadata dict says it describes (validated metadata holds a released scan)."""
    try:
        return ScanId.parse(f"session-{int(calcium['session'])}_scan-{int(calcium['scan'])}")
    except InvalidSessionError:
        return f"session {calcium['session']} scan {calcium['scan']}"


def _read_csv(path: Path, columns: tuple[str, ...]):
    """Yield (line number, row dict) of a UTF-8 CSV file that must have ``columns`` (CRLF or LF line endings)."""
    data = read_release_file(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ReleaseFormatError(f"{path}: not UTF-8 text (byte {exc.start}: {data[exc.start:exc.start + 4]!r}); "
                                 "the file is damaged, re-download it") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise ReleaseFormatError(f"{path}: missing column(s) {missing}; expected header {','.join(columns)}")
        for line, row in enumerate(reader, start=2):
            yield line, row
    except csv.Error as exc:
        raise ReleaseFormatError(f"{path}: not a valid CSV file (line {reader.line_num}: {exc}); the file is "
                                 "damaged, re-download it") from None


def _int_field(row: Mapping[str, str], column: str, path: Path, line: int) -> int:
    try:
        return int(str(row[column]).strip())
    except (TypeError, ValueError):
        raise ReleaseFormatError(f"{path} line {line}: column {column!r} is {row[column]!r}, not an integer") from None


def _scan_of(row: Mapping[str, str], path: Path, line: int, check: bool = True) -> ScanId:
    session, scan = _int_field(row, "session", path, line), _int_field(row, "scan_idx", path, line)
    scan_id = ScanId(session, scan)
    if check:
        try:
            ScanId.parse(str(scan_id))
        except ValueError as exc:
            raise ReleaseFormatError(f"{path} line {line}: {exc}") from None
    return scan_id
