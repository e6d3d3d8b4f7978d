"""Decode one input file of a sweep into the model's uint8 video [T, 144, 256] at 30 Hz.

Supported inputs (by suffix, case-insensitive):

- ``.npy``: a uint8 (or integer-valued numeric) array [T, H, W]; read without pickle.
- ``.npz``: one array, or the array named ``video`` when there are several.
- ``.mp4`` / ``.avi`` / ``.mov`` / ``.mkv``: decoded with PyAV (FFmpeg), converted to grey-scale luma (FFmpeg's
  ``gray`` conversion, full range 0-255) and resampled to 30 Hz by sample-and-hold: output frame k shows the
  source frame on screen at time k / 30 s (frames are repeated or dropped; the duration is kept).

Frames must be 144 x 256 (height x width); with ``resize=True`` other sizes are resized bilinearly
(``torch.nn.functional.interpolate``, ``align_corners=False``, no antialiasing) and rounded to uint8.
"""

from __future__ import annotations

import io
from pathlib import PurePosixPath

import numpy as np

from berg_ray.config import (ARRAY_SUFFIXES, FRAME_HEIGHT, FRAME_RATE_HZ, FRAME_WIDTH, NPZ_VIDEO_KEY,
                             VIDEO_SUFFIXES)
from berg_ray.errors import InvalidStimulusError, InvalidVideoError
from berg_ray.stimulus import validate_stimulus

SUPPORTED_SUFFIXES = ARRAY_SUFFIXES + VIDEO_SUFFIXES
_RESIZE_FRAMES = 64  # frames resized per interpolate call (bounds the float32 working memory)


def is_supported(name: str) -> bool:
    """Whether a file name has one of the supported suffixes."""
    return PurePosixPath(name).suffix.lower() in SUPPORTED_SUFFIXES


def decode_video(name: str, data: bytes, resize: bool = False) -> np.ndarray:
    """Decode the bytes of one input file.

    Args:
        name: file name (its suffix selects the decoder; used in error messages).
        data: the whole file.
        resize: resize frames of another size to 144 x 256 instead of rejecting them.

    Returns:
        C-contiguous uint8 (T, 144, 256).

    Raises:
        InvalidVideoError: unreadable file, wrong dimensions, frame size (without ``resize``), dtype or values.
    """
    suffix = PurePosixPath(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise InvalidVideoError(f"{name}: unsupported file type {suffix!r}; use one of {', '.join(SUPPORTED_SUFFIXES)}")
    frames = _read_array(name, data, suffix) if suffix in ARRAY_SUFFIXES else _decode_av(name, data)
    if frames.ndim != 3:
        raise InvalidVideoError(f"{name}: array has shape {frames.shape}; expected [T, {FRAME_HEIGHT}, "
                                f"{FRAME_WIDTH}] grey-scale frames")
    if frames.shape[1:] != (FRAME_HEIGHT, FRAME_WIDTH) and resize and frames.shape[0] > 0:
        frames = resize_frames(_pixel_values(name, frames))
    return _checked_uint8(name, frames)


def _checked_uint8(name: str, frames: np.ndarray) -> np.ndarray:
    try:
        videos, _ = validate_stimulus(frames)
    except InvalidStimulusError as exc:
        hint = "" if "pixels" not in str(exc) else " (or pass --resize)"
        raise InvalidVideoError(f"{name}: {exc}{hint}") from None
    return videos[0]


def _pixel_values(name: str, frames: np.ndarray) -> np.ndarray:
    """uint8 copy of integer-valued pixels in [0, 255] of any size (before resizing); the same rules as
    ``validate_stimulus``, which checks them again afterwards together with the frame size."""
    if frames.dtype == np.uint8:
        return frames
    if not np.issubdtype(frames.dtype, np.number) or np.issubdtype(frames.dtype, np.complexfloating):
        raise InvalidVideoError(f"{name}: dtype {frames.dtype} is not supported; use uint8 pixels")
    values = frames.astype(np.float64)
    if not np.isfinite(values).all() or (values != np.round(values)).any() or values.min() < 0 or values.max() > 255:
        raise InvalidVideoError(f"{name}: pixels must be integer values in [0, 255] (uint8); convert the video")
    return frames.astype(np.uint8)


def _read_array(name: str, data: bytes, suffix: str) -> np.ndarray:
    try:
        loaded = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as exc:  # truncated, not a numpy file, pickled objects
        raise InvalidVideoError(f"{name}: not a readable {suffix} file ({exc}); save it with numpy.save") from None
    if suffix == ".npy":
        return loaded
    with loaded:
        keys = list(loaded.keys())
        if len(keys) == 1:
            return loaded[keys[0]]
        if NPZ_VIDEO_KEY in keys:
            return loaded[NPZ_VIDEO_KEY]
    raise InvalidVideoError(f"{name}: .npz holds arrays {keys}; store one array, or name the video "
                            f"{NPZ_VIDEO_KEY!r}")


def _decode_av(name: str, data: bytes) -> np.ndarray:
    import av

    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.video:
                raise InvalidVideoError(f"{name}: the file has no video stream")
            stream = container.streams.video[0]
            frames, times = [], []
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="gray"))  # (H, W) uint8 luma, full range
                times.append(float(frame.time) if frame.time is not None else len(times) / _rate(stream))
            rate = _rate(stream)
    except InvalidVideoError:
        raise
    except Exception as exc:  # av.error.InvalidDataError and friends
        raise InvalidVideoError(f"{name}: cannot decode video ({type(exc).__name__}: {exc}); re-encode it, e.g. "
                                f"H.264 in .mp4") from None
    if not frames:
        raise InvalidVideoError(f"{name}: the video stream has no frames")
    return resample_to_rate(np.stack(frames), np.asarray(times), rate)


def _rate(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else FRAME_RATE_HZ


def resample_to_rate(frames: np.ndarray, times: np.ndarray, rate: float,
                     target: float = FRAME_RATE_HZ) -> np.ndarray:
    """Sample-and-hold resampling of frames shown at ``times`` (s) to ``target`` Hz.

    Args:
        frames: (T_in, H, W) frames in presentation order.
        times: (T_in,) presentation times in seconds.
        rate: nominal source frame rate (Hz), which sets how long the last frame stays on screen.
        target: output frame rate (Hz).

    Returns:
        (T_out, H, W) with T_out = round(duration * target), duration = last time - first time + 1 / rate.
    """
    times = times - times[0]
    duration = float(times[-1]) + 1.0 / rate
    n_out = max(1, int(round(duration * target)))
    sample_times = np.arange(n_out) / target
    index = np.searchsorted(times, sample_times + 1e-6, side="right") - 1  # last frame shown at each sample time
    return frames[np.clip(index, 0, len(frames) - 1)]


def resize_frames(frames: np.ndarray) -> np.ndarray:
    """Bilinear resize of uint8 (T, H, W) frames to (T, 144, 256), rounded to the nearest integer."""
    import torch
    import torch.nn.functional as F

    out = np.empty((frames.shape[0], FRAME_HEIGHT, FRAME_WIDTH), dtype=np.uint8)
    for start in range(0, frames.shape[0], _RESIZE_FRAMES):
        block = torch.from_numpy(np.ascontiguousarray(frames[start:start + _RESIZE_FRAMES])).float()[:, None]
        resized = F.interpolate(block, size=(FRAME_HEIGHT, FRAME_WIDTH), mode="bilinear", align_corners=False)
        out[start:start + block.shape[0]] = resized[:, 0].round().clamp(0, 255).to(torch.uint8).numpy()
    return out
