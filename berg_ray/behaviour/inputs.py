"""Validation of the two behaviour inputs at the edge: the one place user arrays become the model's float32 input.

The model was trained with two behaviour inputs per frame (names as in the reference implementation):

* ``perspectives``: pupil centre (x, y), which moves the retina (spec §3.2);
* ``modulations``: (pupil radius, treadmill speed), which drives the per-scan modulation network (spec §3.5).

Each is float ``[T, 2]`` for one video or ``[B, T, 2]`` for a batch, in the model's standardised units (see
:mod:`berg_ray.behaviour.standardise`); 0 is the default the model uses when an input is not given, and an all-zero
input gives exactly the output without it. T must equal the video's frame count exactly (the reference silently
truncates a longer input; we refuse it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from berg_ray.errors import InvalidBehaviourError

BEHAVIOUR_INPUTS = ("perspectives", "modulations")
BEHAVIOUR_WIDTH = 2
MEANING = {"perspectives": "pupil centre x, y", "modulations": "pupil radius, treadmill speed"}


def validate_behaviour(name: str, value: Any, frames: int, videos: int | None = None) -> np.ndarray | None:
    """Check one behaviour input and return it as the model's input.

    Args:
        name: "perspectives" or "modulations" (named in every error).
        value: None, or array-like (numpy, torch, nested lists) of real numbers: [T, 2] when ``videos`` is None
            (one video), [B, T, 2] with B == ``videos`` otherwise.
        frames: T, the frame count of the video(s) it goes with.
        videos: B for a batch, None for one video.

    Returns:
        None when ``value`` is None, else a C-contiguous float32 array of the same shape.

    Raises:
        InvalidBehaviourError: unknown name, non-numeric dtype (bool, complex, strings, objects), wrong number of
            dimensions, wrong length or width, a batch size other than ``videos``, NaN/inf, or values that overflow
            float32. The message names the input, its shape and what is allowed.
    """
    if name not in BEHAVIOUR_INPUTS:
        raise InvalidBehaviourError(f"unknown behaviour input {name!r}; the inputs are {', '.join(BEHAVIOUR_INPUTS)}")
    if value is None:
        return None
    array = _as_numpy(name, value)
    expected = (frames, BEHAVIOUR_WIDTH) if videos is None else (videos, frames, BEHAVIOUR_WIDTH)
    allowed = (f"[T, {BEHAVIOUR_WIDTH}] = [{frames}, {BEHAVIOUR_WIDTH}] for this video" if videos is None else
               f"[B, T, {BEHAVIOUR_WIDTH}] = [{videos}, {frames}, {BEHAVIOUR_WIDTH}] for this batch")
    what = f"{name} ({MEANING[name]}) has shape {list(array.shape)}; expected {allowed}"
    if array.ndim != len(expected):
        raise InvalidBehaviourError(f"{what}: one row per frame, {BEHAVIOUR_WIDTH} columns"
                                    + (", one such array per video" if videos is not None else ""))
    if array.shape[-1] != BEHAVIOUR_WIDTH:
        raise InvalidBehaviourError(f"{what}: {BEHAVIOUR_WIDTH} columns ({MEANING[name]})")
    if array.shape[-2] != frames:
        raise InvalidBehaviourError(f"{what}: exactly one row per stimulus frame (not truncated or padded; cut or "
                                    "resample the trace to the video's frames)")
    if videos is not None and array.shape[0] != videos:
        raise InvalidBehaviourError(f"{what}: one video's trace per stimulus video")
    if array.dtype.kind not in "uif":
        raise InvalidBehaviourError(f"{name} has dtype {array.dtype}; pass real numbers (float32 in the model's "
                                    "standardised units)")
    with np.errstate(over="ignore", invalid="ignore"):
        converted = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(converted).all():
        bad = ~np.isfinite(converted)
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InvalidBehaviourError(f"{name} contains NaN or infinite values (or values beyond float32), first at "
                                    f"index {list(where)}; fill gaps in the trace (e.g. interpolate) before passing it")
    return converted


def validate_behaviours(inputs: Mapping[str, Any], frames: int, videos: int | None = None
                        ) -> dict[str, np.ndarray | None]:
    """``validate_behaviour`` for both inputs; ``inputs`` maps a name to a value or None (missing means None)."""
    unknown = sorted(set(inputs) - set(BEHAVIOUR_INPUTS))
    if unknown:
        raise InvalidBehaviourError(f"unknown behaviour input(s) {unknown}; the inputs are "
                                    f"{', '.join(BEHAVIOUR_INPUTS)}")
    return {name: validate_behaviour(name, inputs.get(name), frames, videos) for name in BEHAVIOUR_INPUTS}


def _as_numpy(name: str, value: Any) -> np.ndarray:
    if np.ma.isMaskedArray(value):
        raise InvalidBehaviourError(f"{name} is a masked array, and the model would ignore its mask; fill the masked "
                                    "frames first (value.filled(...)) and pass a plain array")
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch.Tensor, without importing torch here
        if value.is_meta or str(value.layout) != "torch.strided":
            raise InvalidBehaviourError(f"{name} is a meta or sparse tensor; pass a dense array of numbers")
        if value.is_complex() or str(value.dtype) == "torch.bool":
            raise InvalidBehaviourError(f"{name} has dtype {value.dtype}; pass real numbers")
        value = value.detach().cpu().float().numpy() if value.is_floating_point() else value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray):
        try:
            value = np.asarray(value)
        except Exception as exc:  # ragged lists and the like
            raise InvalidBehaviourError(f"{name} cannot be read as an array ({exc}); pass a numpy array") from None
    return value
