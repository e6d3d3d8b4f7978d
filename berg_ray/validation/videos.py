"""Validation of stimulus videos at the edge: the one place user arrays become the model's uint8 input.

A stimulus is a grey-scale video at 30 Hz of 144 x 256 pixels, [T, 144, 256] for one video or [B, T, 144, 256]
for a batch of equal-length videos. Pixel values are uint8, or integer-valued numbers in [0, 255] of any integer
or floating dtype, numpy or torch (bfloat16 and float16 included; they are converted exactly, never rounded or
clipped). Masked arrays, timedelta/datetime, bool, complex and object arrays, and meta or sparse tensors are
refused: each would be silently reinterpreted.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from berg_ray.config import FRAME_HEIGHT, FRAME_WIDTH
from berg_ray.errors import InvalidStimulusError

_SHAPE_HELP = f"expected [T, {FRAME_HEIGHT}, {FRAME_WIDTH}] (one video) or [B, T, {FRAME_HEIGHT}, {FRAME_WIDTH}]"


def validate_stimulus(stimulus: Any) -> tuple[np.ndarray, bool]:
    """Check a stimulus and return it as the model's input.

    Args:
        stimulus: array-like [T, 144, 256] or [B, T, 144, 256]; uint8 or integer-valued numbers in [0, 255]
            (a torch tensor is accepted too).

    Returns:
        (videos, batched): C-contiguous uint8 array (B, T, 144, 256) (B = 1 for a single video), and whether the
        input was a batch (4-D).

    Raises:
        InvalidStimulusError: wrong type, ndim, frame size, zero frames or videos, non-numeric dtype, NaN/inf,
            non-integer values or values outside [0, 255]. The message names the problem and the fix.
    """
    array = _as_numpy(stimulus)
    if array.ndim not in (3, 4):
        raise InvalidStimulusError(f"stimulus has {array.ndim} dimensions (shape {array.shape}); {_SHAPE_HELP}")
    batched = array.ndim == 4
    videos = array if batched else array[None]
    if videos.shape[2:] != (FRAME_HEIGHT, FRAME_WIDTH):
        raise InvalidStimulusError(
            f"stimulus frames are {videos.shape[2]}x{videos.shape[3]} pixels (shape {array.shape}); {_SHAPE_HELP}: "
            f"resize the video to {FRAME_HEIGHT}x{FRAME_WIDTH} (height x width) first"
        )
    if videos.shape[0] == 0 or videos.shape[1] == 0:
        raise InvalidStimulusError(f"stimulus has no frames or no videos (shape {array.shape}); {_SHAPE_HELP}")
    return np.ascontiguousarray(_to_uint8(videos)), batched


def _as_numpy(stimulus: Any) -> np.ndarray:
    if np.ma.isMaskedArray(stimulus):
        raise InvalidStimulusError("stimulus is a masked array, and the model would ignore its mask; fill the masked "
                                   "pixels first (stimulus.filled(value)) and pass a plain array")
    if hasattr(stimulus, "detach") and hasattr(stimulus, "cpu"):  # torch.Tensor, without importing torch here
        stimulus = _tensor_to_numpy(stimulus)
    if not isinstance(stimulus, np.ndarray):
        try:
            stimulus = np.asarray(stimulus)
        except Exception as exc:  # ragged lists and the like
            raise InvalidStimulusError(f"stimulus cannot be read as an array ({exc}); pass a numpy array") from None
    return stimulus


def _tensor_to_numpy(tensor: Any) -> np.ndarray:
    """A dense torch tensor as numpy; float dtypes numpy lacks (bfloat16, float8) go through float32 exactly."""
    if tensor.is_meta:
        raise InvalidStimulusError(f"stimulus is a meta tensor (shape {tuple(tensor.shape)}, no data); pass a tensor "
                                   "that holds the pixel values")
    if str(tensor.layout) != "torch.strided":
        raise InvalidStimulusError(f"stimulus is a {str(tensor.layout).removeprefix('torch.')} tensor; pass a dense "
                                   "tensor (tensor.to_dense())")
    tensor = tensor.detach().cpu()
    if tensor.is_floating_point() and str(tensor.dtype) not in ("torch.float16", "torch.float32", "torch.float64"):
        tensor = tensor.float()  # every bfloat16 / float8 value is exact in float32
    try:
        return tensor.numpy()
    except (TypeError, RuntimeError):
        raise InvalidStimulusError(f"stimulus dtype {tensor.dtype} is not supported; pass uint8 pixels or "
                                   "integer-valued numbers in [0, 255]") from None


def _to_uint8(videos: np.ndarray) -> np.ndarray:
    """Exact conversion of integer-valued pixels to uint8; raises for anything that would need rounding."""
    dtype = videos.dtype
    if dtype == np.uint8:
        return videos
    if dtype.kind not in "uif":  # bool, complex, timedelta64, datetime64, object, strings
        raise InvalidStimulusError(
            f"stimulus dtype {dtype} is not supported; pass uint8 pixels or integer-valued numbers in [0, 255]"
        )
    if np.issubdtype(dtype, np.floating):
        if not np.isfinite(videos).all():
            raise InvalidStimulusError("stimulus contains NaN or infinite values; pixels must be integers in [0, 255]")
        if not (videos == np.round(videos)).all():
            raise InvalidStimulusError(
                "stimulus contains non-integer values; pass integer pixel values in [0, 255] "
                "(for a float video in [0, 1], use np.round(video * 255).astype(np.uint8))"
            )
    low, high = videos.min(), videos.max()
    if low < 0 or high > 255:
        raise InvalidStimulusError(
            f"stimulus values span [{low}, {high}]; pixels must lie in [0, 255] (uint8 grey levels)"
        )
    return videos.astype(np.uint8)
