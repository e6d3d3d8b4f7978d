"""Safe reading of the per-scan metadata files of the Wang et al. (Nature 2025) BERG release.

A metadata file (``metadata/session-X_scan-Y_metadata.npy``) is ``np.save`` of a dict, so its payload is a pickle,
and unpickling runs whatever code the file's author chose. ``np.load(allow_pickle=True)`` is therefore never used
here: the ``.npy`` header is parsed with :mod:`numpy.lib.format`, and the pickle that follows is run by an
unpickler that admits only what rebuilds numpy arrays, numpy scalars, dtypes and plain containers. Anything else
raises :class:`~berg_ray.errors.UnsafeMetadataError` before it is called.

The dict holds (N = units of the scan, in the BERG model card's layout):

* ``calcium_2p``: ``session``, ``scan``, ``animal_id`` (ints); ``unit_id`` (N,) ints; ``coordinates`` (N, 3) in
  microns; ``OSI``, ``DSI``, ``gOSI``, ``gDSI``, ``pref_ori`` (deg), ``pref_dir`` (deg), each (N,);
  ``roi``: {``V1``, ``LM``, ``AL``, ``RL``: (N,) 0/1}; ``field_masks``: {``field_1`` ... ``field_k``: (N,) 0/1}.
* ``encoding_model``: ``cc_abs``, ``cc_max``, ``cc_norm``, each (N,).

``session`` and ``scan`` must name one of the 13 released scans, and ``field_masks`` may hold only that scan's
imaging fields (config ``SCAN_FIELDS``). Containers must not contain themselves or nest deeper than
``METADATA_MAX_DEPTH`` (a crafted pickle can build both; code walking the dict would recurse forever).
"""

from __future__ import annotations

import io
import os
import pickle
import re
from collections.abc import Mapping
from typing import IO, Any

import numpy as np
from numpy.lib import format as npy_format

from berg_ray.config import METADATA_MAX_DEPTH, ROIS, ScanId
from berg_ray.errors import BergRayError, InvalidSessionError, ReleaseFormatError, UnsafeMetadataError


def _numpy_pickle_callables() -> dict[str, Any]:
    """The numpy callables that numpy's own pickles reference, taken from the objects' reductions."""
    return {
        "_reconstruct": np.zeros(1).__reduce__()[0],  # ndarray, protocols 2-4
        "scalar": np.float64(0).__reduce__()[0],  # numpy scalars
        "_frombuffer": np.zeros(1).__reduce_ex__(5)[0],  # ndarray, protocol 5
    }


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """(module, name) -> object: everything a metadata pickle may reference; both numpy 1 and 2 module names."""
    numpy_callables = _numpy_pickle_callables()
    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for package in ("numpy._core", "numpy.core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = numpy_callables["_reconstruct"]
        allowed[(f"{package}.multiarray", "scalar")] = numpy_callables["scalar"]
        allowed[(f"{package}.numeric", "_frombuffer")] = numpy_callables["_frombuffer"]
    allowed[("_codecs", "encode")] = __import__("_codecs").encode  # bytes in protocol-2 pickles
    for container in (dict, list, tuple, str, int, float, bool):
        allowed[("builtins", container.__name__)] = container
    return allowed


_ALLOWED_GLOBALS = _allowed_globals()
_ALLOWED_TEXT = (
    "metadata may only contain numpy arrays, numpy scalars and dtypes, and plain containers "
    "(dict, list, tuple, str, int, float, bool, None); allowed pickle globals: "
    + ", ".join(sorted(f"{module}.{name}" for module, name in _ALLOWED_GLOBALS))
)

_SCALAR_KEYS = ("session", "scan", "animal_id")
_PER_UNIT_KEYS = ("OSI", "DSI", "gOSI", "gDSI", "pref_ori", "pref_dir")
_SCORE_KEYS = ("cc_abs", "cc_max", "cc_norm")
_FIELD_KEY = re.compile(r"^field_([0-9]{1,4})$")  # ASCII digits (\d takes any Unicode digit)


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the allow-listed globals and refuses every other one."""

    def __init__(self, file: IO[bytes], source: str) -> None:
        super().__init__(file)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        """Return the allow-listed object for ``module.name``; raise UnsafeMetadataError for anything else."""
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafeMetadataError(
                f"{self._source}: refused pickle global {module}.{name}; {_ALLOWED_TEXT}"
            ) from None


def read_scan_metadata(path: str | os.PathLike[str], data: bytes | None = None) -> dict[str, Any]:
    """Read one scan's metadata file safely and check its structure.

    Args:
        path: A ``session-X_scan-Y_metadata.npy`` file (``np.save`` of a dict).
        data: the file's bytes when the caller already read (and verified) them; None reads ``path``.

    Returns:
        The metadata dict: ``calcium_2p`` and ``encoding_model`` sub-dicts whose per-unit entries are (N,) numpy
        arrays (``coordinates`` is (N, 3), microns), as described in the module docstring.

    Raises:
        UnsafeMetadataError: The pickle references anything outside the allow-list (nothing of it is run).
        ReleaseFormatError: The file is missing or corrupt, or a required key is missing or has the wrong shape.
    """
    source = os.fspath(path)
    try:
        with (io.BytesIO(data) if data is not None else open(source, "rb")) as file:
            payload = _read_object_payload(file, source)
    except BergRayError:
        raise
    except OSError as exc:
        raise ReleaseFormatError(f"{source}: cannot read metadata file ({exc.strerror or exc})") from exc
    except Exception as exc:  # a corrupt pickle can fail in many ways; all mean the same to the caller
        raise ReleaseFormatError(f"{source}: corrupt metadata file ({type(exc).__name__}: {exc})") from exc
    if not (isinstance(payload, np.ndarray) and payload.shape == () and payload.dtype == object):
        raise ReleaseFormatError(f"{source}: expected a pickled 0-d object array holding a dict")
    metadata = payload.item()
    validate_scan_metadata(metadata, source)
    return metadata


def _read_object_payload(file: IO[bytes], source: str) -> Any:
    """Parse the .npy header of an object array, then unpickle the rest with the restricted unpickler."""
    version = npy_format.read_magic(file)
    if version == (1, 0):
        shape, _, dtype = npy_format.read_array_header_1_0(file)
    elif version == (2, 0):
        shape, _, dtype = npy_format.read_array_header_2_0(file)
    else:
        raise ReleaseFormatError(f"{source}: unsupported .npy format version {version}; expected 1.0 or 2.0")
    if shape != () or dtype != np.dtype(object):
        raise ReleaseFormatError(
            f"{source}: expected a pickled dict (object array of shape ()), got dtype {dtype} and shape {shape}"
        )
    return _RestrictedUnpickler(file, source).load()


def write_scan_metadata(target: str | os.PathLike[str] | IO[bytes], metadata: Mapping[str, Any]) -> None:
    """Write a metadata dict in the release's format (``np.save`` of the dict) after checking its structure.

    Args:
        target: Destination file path (written as given, no ``.npy`` appended) or an open binary file.
        metadata: Dict in the layout described in the module docstring.

    Raises:
        ReleaseFormatError: ``metadata`` lacks a required key or has a wrong shape.
    """
    is_path = isinstance(target, (str, os.PathLike))
    source = os.fspath(target) if is_path else str(getattr(target, "name", "<metadata stream>"))
    validate_scan_metadata(metadata, source)
    if is_path:
        with open(target, "wb") as file:  # np.save(path) would append ".npy"; the caller chose the name
            np.save(file, dict(metadata), allow_pickle=True)
    else:
        np.save(target, dict(metadata), allow_pickle=True)


def validate_scan_metadata(metadata: Any, source: str) -> None:
    """Check the structure of a metadata dict; raise ReleaseFormatError naming ``source`` and the bad key.

    Args:
        metadata: The unpickled object.
        source: File name used in error messages.
    """
    _require_mapping(metadata, source, "<top level>")
    _check_tree(metadata, source)
    calcium = _require_mapping(_require(metadata, "calcium_2p", source, ""), source, "calcium_2p")
    scores = _require_mapping(_require(metadata, "encoding_model", source, ""), source, "encoding_model")
    for key in _SCALAR_KEYS:
        value = _require(calcium, key, source, "calcium_2p.")
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise ReleaseFormatError(f"{source}: calcium_2p.{key} must be an integer, got {value!r}")
    try:
        scan_id = ScanId.parse(f"session-{calcium['session']}_scan-{calcium['scan']}")
    except InvalidSessionError:
        raise ReleaseFormatError(f"{source}: calcium_2p.session {calcium['session']} / scan {calcium['scan']} is not "
                                 "one of the 13 released scans; the file is not release metadata") from None
    unit_id = _require_array(calcium, "unit_id", source, "calcium_2p.", None)
    if unit_id.ndim != 1 or not np.issubdtype(unit_id.dtype, np.integer):
        raise ReleaseFormatError(f"{source}: calcium_2p.unit_id must be a 1-D integer array, got {unit_id.dtype}")
    n_units = unit_id.shape[0]
    _require_array(calcium, "coordinates", source, "calcium_2p.", (n_units, 3))
    for key in _PER_UNIT_KEYS:
        _require_array(calcium, key, source, "calcium_2p.", (n_units,))
    roi = _require_mapping(_require(calcium, "roi", source, "calcium_2p."), source, "calcium_2p.roi")
    for key in ROIS:
        _require_array(roi, key, source, "calcium_2p.roi.", (n_units,))
    _validate_field_masks(_require(calcium, "field_masks", source, "calcium_2p."), source, n_units, scan_id)
    for key in _SCORE_KEYS:
        _require_array(scores, key, source, "encoding_model.", (n_units,))


def _validate_field_masks(field_masks: Any, source: str, n_units: int, scan_id: ScanId) -> None:
    """Field masks must be exactly ``field_1`` ... ``field_k`` (k >= 1) of the scan's fields, each an (N,) array."""
    where = "calcium_2p.field_masks"
    _require_mapping(field_masks, source, where)
    allowed = {f"field_{f}" for f in scan_id.fields}
    unknown = sorted(map(str, set(map(str, field_masks)) - allowed), key=lambda k: (len(k), k))
    if unknown:
        raise ReleaseFormatError(
            f"{source}: {where} has {', '.join(unknown)}, but {scan_id} has fields {scan_id.fields[0]}-"
            f"{scan_id.fields[-1]} only (field_{scan_id.fields[0]} ... field_{scan_id.fields[-1]}); the file is "
            "damaged or belongs to another release, re-download it"
        )
    numbers = sorted(int(m.group(1)) for m in map(_FIELD_KEY.match, map(str, field_masks)) if m)
    if not field_masks or numbers != list(range(1, len(field_masks) + 1)):
        raise ReleaseFormatError(
            f"{source}: {where} must have keys field_1 ... field_k, got {sorted(map(str, field_masks))}"
        )
    for key in field_masks:
        _require_array(field_masks, key, source, f"{where}.", (n_units,))


def _check_tree(metadata: Mapping[str, Any], source: str) -> None:
    """Refuse containers that contain themselves or nest deeper than METADATA_MAX_DEPTH (iterative walk)."""
    stack: list[tuple[Any, str, int, frozenset[int]]] = [(metadata, "<top level>", 0, frozenset())]
    while stack:
        value, where, depth, above = stack.pop()
        if isinstance(value, Mapping):
            children = [(f"{where}.{k}" if depth else str(k), v) for k, v in value.items()]
        elif isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.dtype == object):
            children = [(f"{where}[{i}]", v) for i, v in enumerate(np.asarray(value, dtype=object).ravel()
                                                                 if isinstance(value, np.ndarray) else value)]
        else:
            continue
        if id(value) in above:
            raise ReleaseFormatError(f"{source}: metadata {where} contains itself (a reference cycle); the file is "
                                     "crafted or damaged, re-download it")
        if depth >= METADATA_MAX_DEPTH:
            raise ReleaseFormatError(f"{source}: metadata is nested deeper than {METADATA_MAX_DEPTH} levels at "
                                     f"{where[:200]}; the file is crafted or damaged, re-download it")
        inner = above | {id(value)}
        stack.extend((child, name, depth + 1, inner) for name, child in children)


def _require(mapping: Mapping[str, Any], key: str, source: str, where: str) -> Any:
    """``mapping[key]``, or ReleaseFormatError naming the file and the dotted key path ``where + key``."""
    if key not in mapping:
        raise ReleaseFormatError(f"{source}: missing required metadata key {where}{key!r}")
    return mapping[key]


def _require_mapping(value: Any, source: str, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ReleaseFormatError(f"{source}: {where} must be a dict, got {type(value).__name__}")
    return value


def _require_array(
    mapping: Mapping[str, Any], key: str, source: str, where: str, shape: tuple[int, ...] | None
) -> np.ndarray:
    """A numeric numpy array under ``key``, of ``shape`` when given; ReleaseFormatError otherwise."""
    value = _require(mapping, key, source, where)
    if not isinstance(value, np.ndarray) or not (np.issubdtype(value.dtype, np.number) or value.dtype == bool):
        raise ReleaseFormatError(f"{source}: {where}{key} must be a numeric numpy array, got {type(value).__name__}")
    if shape is not None and value.shape != shape:
        raise ReleaseFormatError(f"{source}: {where}{key} has shape {value.shape}, expected {shape}")
    return value
