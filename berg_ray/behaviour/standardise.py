"""Standardise raw recorded behaviour traces into the model's inputs ``perspectives`` and ``modulations``.

Input: per stimulus frame (30 Hz; resample the eye-camera and treadmill traces to the video's frames first) the
pupil centre (x, y), the pupil radius and the treadmill velocity, in the recording's own units (camera pixels,
cm/s: the units cancel). Output: ``perspectives`` = (pupil x, pupil y) and ``modulations`` = (pupil radius,
treadmill velocity), float32 [T, 2] each, in the model's standardised units.

The convention is the training pipeline's, verified in its public code (cajal/foundation, commit a498d32):

* Which traces, in which order: perspectives are the pupil traces ``center_x``, ``center_y``
  (``foundation/recording/scan.py`` l.166-190, ordered by ``ScanVisualPerspectiveOrder`` l.283-308);
  modulations are the pupil ``radius`` then the treadmill velocity ``treadmill_vel`` (``ScanVisualModulations``
  l.194-221, ``ScanVisualModulationOrder`` l.312-338: ``trace_ids = [trace_p, trace_t]``, l.332).
* How: each trace goes through ``Affine``, ``(x - shift) / scale`` (``foundation/utils/standardize.py`` l.43-72),
  whose shift is zeroed for "homogeneous" traces (l.62: ``shift * np.logical_not(homogeneous)``). Pupil traces
  are not homogeneous (``foundation/recording/compute/trace.py`` l.141-143, ``ScanPupil.homogeneous`` is False)
  and the treadmill is (l.165-167, ``ScanTreadmill.homogeneous`` is True). So the pupil traces are centred and
  scaled, ``(x - mean) / std``, and the treadmill is only scaled, ``v / std``: the issue's description is right.
  The fnn data guide (vijk777/fnn c34328c, ``demos/4 - prepare_data_to_train_digital_twin.ipynb``) says the
  treadmill is centred by its mean too; the pipeline's code, which made the training data, does not.
* With which statistics: summaries of each trace's values resampled to the stimulus frames and concatenated
  over the scan's trials (``foundation/recording/compute/stat.py`` l.24-44); the summary types are ``Mean`` and
  ``Std(ddof)`` (``foundation/utility/stat.py`` l.39-57), and the fnn data guide names the mean and the standard
  deviation. Which ddof was chosen is a database setting, not code; we use ddof=0 (for long traces the two agree
  to ~1/(2T)). The pipeline clips a scale below 1e-4 (l.63); we refuse a zero spread instead.
* Gaps: NaN frames (lost tracking) are filled by linear interpolation before resampling, and an all-NaN trace is
  an error (``foundation/utils/resample.py`` ``fill_nans`` l.34-57, used at l.288 and l.323). We do the same.

What 0 means: perspectives (0, 0) is the pupil at its mean position (the centre of gaze); modulations[:, 0] = 0
is the mean pupil radius; modulations[:, 1] = 0 is a treadmill velocity of 0, a stationary mouse (not its mean
speed; the sign is kept, so walking backwards is negative). A trace left out (None) stays at that default.

The scan's training statistics are not part of the public release, so statistics are estimated from the traces
given (all videos of one recording session at once, ideally: :meth:`BehaviourStats.of`); inputs standardised
that way approximate what the model saw in training.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from berg_ray.behaviour.inputs import validate_behaviour
from berg_ray.errors import InvalidBehaviourError

TRACES = {"pupil_center": "pupil centre x, y per frame, [T, 2]", "pupil_radius": "pupil radius per frame, [T]",
          "treadmill": "treadmill velocity per frame, [T]"}


@dataclass(frozen=True)
class BehaviourStats:
    """Statistics of the raw traces (their own units) that standardise them; None for a trace not given.

    Save with ``dataclasses.asdict`` (e.g. to JSON) and restore with ``BehaviourStats(**saved)``.
    """

    pupil_center_mean: tuple[float, float] | None = None  # (x, y)
    pupil_center_std: tuple[float, float] | None = None
    pupil_radius_mean: float | None = None
    pupil_radius_std: float | None = None
    treadmill_std: float | None = None  # the treadmill is scaled only: 0 stays a stationary mouse

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None:
                continue
            width = 2 if field.name.startswith("pupil_center") else None
            checked = _stat_value(field.name, value, width, spread=field.name.endswith("_std"))
            object.__setattr__(self, field.name, checked)

    @classmethod
    def of(cls, pupil_center: Any = None, pupil_radius: Any = None, treadmill: Any = None) -> BehaviourStats:
        """Mean and standard deviation (ddof=0) of each trace given, after filling NaN gaps.

        Each argument is one video's trace or a list/tuple of numpy arrays, one per video (concatenated over
        time, as the pipeline concatenates a scan's trials): ``pupil_center`` [T, 2], the others [T].

        Raises:
            InvalidBehaviourError: a trace of the wrong shape or dtype, with inf, NaN in every frame, or
                constant (no spread to scale by).
        """
        stats: dict[str, Any] = {}
        if pupil_center is not None:
            values = _concatenated("pupil_center", pupil_center)
            stats["pupil_center_mean"] = tuple(float(v) for v in values.mean(axis=0))
            stats["pupil_center_std"] = tuple(_spread("pupil_center", values[:, i], axis) for i, axis in
                                              enumerate("xy"))
        if pupil_radius is not None:
            values = _concatenated("pupil_radius", pupil_radius)
            stats["pupil_radius_mean"], stats["pupil_radius_std"] = float(values.mean()), _spread("pupil_radius",
                                                                                                  values)
        if treadmill is not None:
            stats["treadmill_std"] = _spread("treadmill", _concatenated("treadmill", treadmill))
        return cls(**stats)


@dataclass(frozen=True)
class Behaviour:
    """Standardised behaviour of one video: the model's inputs and the statistics used."""

    perspectives: np.ndarray | None  # float32 [T, 2]: pupil x, y
    modulations: np.ndarray | None  # float32 [T, 2]: pupil radius, treadmill velocity
    stats: BehaviourStats

    @property
    def inputs(self) -> dict[str, np.ndarray | None]:
        """Keyword arguments of ``BERG.encode``: ``berg.encode(model, video, **behaviour.inputs)``."""
        return {"perspectives": self.perspectives, "modulations": self.modulations}


def standardise(pupil_center: Any = None, pupil_radius: Any = None, treadmill: Any = None,
                stats: BehaviourStats | None = None) -> Behaviour:
    """Standardise one video's raw traces as the training pipeline did (see the module docstring).

    Args:
        pupil_center: pupil centre (x, y) per frame, [T, 2], or None.
        pupil_radius: pupil radius per frame, [T], or None.
        treadmill: treadmill velocity per frame, [T], or None (signed, as recorded).
        stats: statistics to use, e.g. those of a whole session (:meth:`BehaviourStats.of`); None = those of the
            traces given (returned in ``Behaviour.stats``, to reuse for the session's other videos).

    Returns:
        ``Behaviour`` with ``perspectives`` (None without ``pupil_center``) and ``modulations`` (None without
        both radius and treadmill; a missing column of the two is 0, the model's default).

    Raises:
        InvalidBehaviourError: no trace given, traces of different lengths, a bad trace (see
            :meth:`BehaviourStats.of`), or ``stats`` lacking a statistic a given trace needs.
    """
    traces = {"pupil_center": pupil_center, "pupil_radius": pupil_radius, "treadmill": treadmill}
    given = {name: _filled(name, value) for name, value in traces.items() if value is not None}
    if not given:
        raise InvalidBehaviourError("standardise needs at least one trace: pupil_center, pupil_radius or treadmill")
    lengths = {name: len(values) for name, values in given.items()}
    if len(set(lengths.values())) != 1:
        raise InvalidBehaviourError(f"the traces have different lengths {lengths}; give each one value per stimulus "
                                    "frame (resample them to the video's frames first)")
    stats = BehaviourStats.of(**given) if stats is None else stats
    frames = next(iter(lengths.values()))
    perspectives = modulations = None
    if "pupil_center" in given:
        mean, std = _needed(stats, "pupil_center_mean"), _needed(stats, "pupil_center_std")
        perspectives = (given["pupil_center"] - np.asarray(mean)) / np.asarray(std)
    if "pupil_radius" in given or "treadmill" in given:
        modulations = np.zeros((frames, 2))
        if "pupil_radius" in given:
            modulations[:, 0] = (given["pupil_radius"] - _needed(stats, "pupil_radius_mean")) / _needed(
                stats, "pupil_radius_std")
        if "treadmill" in given:
            modulations[:, 1] = given["treadmill"] / _needed(stats, "treadmill_std")
    return Behaviour(validate_behaviour("perspectives", perspectives, frames),
                     validate_behaviour("modulations", modulations, frames), stats)


def _concatenated(name: str, value: Any) -> np.ndarray:
    """One trace, or a list/tuple of numpy arrays (one per video) joined along time; gaps filled."""
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, np.ndarray) for v in value):
        return np.concatenate([_filled(f"{name}[{i}]", v) for i, v in enumerate(value)])
    return _filled(name, value)


def _filled(name: str, value: Any) -> np.ndarray:
    """float64 copy of a trace ([T, 2] for pupil_center, [T] otherwise) with NaN (or masked) frames linearly
    interpolated, as the pipeline fills gaps; frames before the first or after the last value take that value."""
    base = name.split("[")[0]
    try:
        if np.ma.isMaskedArray(value):  # masked frames are lost frames, like NaN
            value = np.ma.asarray(value, dtype=np.float64).filled(np.nan)
        array = np.asarray(value)
    except Exception as exc:  # ragged nested lists
        raise InvalidBehaviourError(f"{name} cannot be read as an array ({exc}); pass {TRACES[base]}") from None
    expected = 2 if base == "pupil_center" else 1
    if array.ndim != expected or (expected == 2 and array.shape[1] != 2) or array.shape[0] == 0:
        raise InvalidBehaviourError(f"{name} has shape {list(array.shape)}; expected {TRACES[base]} with T >= 1")
    if array.dtype.kind not in "uif":
        raise InvalidBehaviourError(f"{name} has dtype {array.dtype}; pass real numbers ({TRACES[base]})")
    array = array.astype(np.float64)
    if np.isinf(array).any():
        raise InvalidBehaviourError(f"{name} holds infinite values (first at frame "
                                    f"{int(np.argwhere(np.isinf(array))[0][0])}); mark lost frames as NaN instead")
    columns = array.reshape(len(array), -1)
    for column in columns.T:  # a view: filled in place
        missing = np.isnan(column)
        if missing.all():
            raise InvalidBehaviourError(f"{name} is NaN in every frame (no tracking in this video); leave it out "
                                        "(None: the model's default) or give the video's recorded trace")
        if missing.any():
            column[missing] = np.interp(np.flatnonzero(missing), np.flatnonzero(~missing), column[~missing])
    return columns.reshape(array.shape)


def _spread(name: str, values: np.ndarray, axis: str = "") -> float:
    label = f"{name} {axis}".strip()
    if values.min() == values.max():
        raise InvalidBehaviourError(f"{label} is constant ({values[0]:g} in all {len(values)} frames), so its spread "
                                    "cannot be estimated from it; pass stats= with the session's statistics "
                                    "(BehaviourStats), or leave the trace out (None: the model's default)")
    return float(values.std())


def _needed(stats: BehaviourStats, field: str) -> Any:
    value = getattr(stats, field)
    if value is None:
        raise InvalidBehaviourError(f"stats has no {field} for the {field.rsplit('_', 1)[0]} trace given; "
                                    "compute it with BehaviourStats.of(...) on the session's traces")
    return value


def _stat_value(name: str, value: Any, width: int | None, spread: bool) -> float | tuple[float, ...]:
    """A statistic as float (or tuple of ``width`` floats), finite, and > 0 for a spread."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        array = None
    shape = () if width is None else (width,)
    if array is None or array.shape != shape or not np.isfinite(array).all() or (spread and (array <= 0).any()):
        what = "a number" if width is None else f"{width} numbers (x, y)"
        raise InvalidBehaviourError(f"stats {name} is {value!r}; expected {what}, finite"
                                    + (" and > 0 (a spread)" if spread else ""))
    return float(array) if width is None else tuple(float(v) for v in array)


__all__ = ["Behaviour", "BehaviourStats", "standardise"]
