"""Decode one input file of a sweep into the model's uint8 video [T, 144, 256] at 30 Hz.

Supported inputs (by suffix, case-insensitive):

- ``.npy``: a uint8 (or integer-valued numeric) array [T, H, W]; read without pickle.
- ``.npz``: the array named ``stimulus``, else ``video``, else its one array that is not behaviour (it may also
  carry ``perspectives`` / ``modulations``, read by ``arrays.read_behaviour``).
- ``.mp4`` / ``.avi`` / ``.mov`` / ``.mkv``: decoded with PyAV (FFmpeg), converted to grey-scale luma (FFmpeg's
  ``gray`` conversion, full range 0-255) and resampled to 30 Hz by sample-and-hold: output frame k shows the
  source frame on screen at time k / 30 s (frames are repeated or dropped; the duration is kept).

A stimulus may have at most ``max_frames`` frames at 30 Hz (``--max-frames``), checked from the headers before
the data is read: a video's declared length (its stream's duration, else its frame count, else the container's
duration) before decoding, and again while it is resampled (frame by frame, so a file that claims a short
duration cannot allocate more); an array's shape from its .npy header and a .npz member's unpacked size from the
zip directory (see arrays.py). Given a file object rather than bytes, a refused input is read only that far.

Frames must be 144 x 256 (height x width); with ``resize=True`` other sizes are resized bilinearly
(``torch.nn.functional.interpolate``, ``align_corners=False``, no antialiasing) and rounded to uint8.
"""

from __future__ import annotations

import io
import math
from pathlib import PurePosixPath
from typing import BinaryIO

import numpy as np

from berg_ray.config import (ARRAY_SUFFIXES, DEFAULT_SWEEP_MAX_FRAMES, FRAME_HEIGHT, FRAME_RATE_HZ, FRAME_WIDTH,
                             VIDEO_SUFFIXES)
from berg_ray.errors import InvalidStimulusError, InvalidVideoError
from berg_ray.validation.videos import validate_stimulus
from berg_ray.sweep.arrays import read_array, too_long, wrong_dimensions

SUPPORTED_SUFFIXES = ARRAY_SUFFIXES + VIDEO_SUFFIXES
_RESIZE_FRAMES = 64  # frames resized per interpolate call (bounds the float32 working memory)
_SAMPLE_EPS_S = 1e-6  # a frame shown at k / target (up to float error) counts as shown at sample k


def is_supported(name: str) -> bool:
    """Whether a file name has one of the supported suffixes."""
    return PurePosixPath(name).suffix.lower() in SUPPORTED_SUFFIXES


def decode_video(name: str, data: bytes | BinaryIO, resize: bool = False,
                 max_frames: int = DEFAULT_SWEEP_MAX_FRAMES) -> np.ndarray:
    """Decode one input file, allocating at most about ``max_frames`` frames.

    Args:
        name: file name (its suffix selects the decoder; used in error messages).
        data: the whole file, or a seekable binary file positioned at its start (read only as far as needed).
        resize: resize frames of another size to 144 x 256 instead of rejecting them.
        max_frames: most frames (at 30 Hz) a stimulus may have; longer ones are refused before their frames are
            read or allocated (headers are checked first, then frames while decoding).

    Returns:
        C-contiguous uint8 (T, 144, 256), T <= max_frames.

    Raises:
        InvalidVideoError: unreadable file, wrong dimensions, frame size (without ``resize``), dtype, values or
            length. Anything the third-party readers raise on a malformed file becomes this error too.
    """
    suffix = PurePosixPath(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise InvalidVideoError(f"{name}: unsupported file type {suffix!r}; use one of {', '.join(SUPPORTED_SUFFIXES)}")
    handle = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
    if suffix in VIDEO_SUFFIXES:
        return _checked_uint8(name, _decode_av(name, handle, resize, max_frames))
    return array_frames(name, read_array(name, handle, suffix, max_frames), resize, max_frames)


def array_frames(name: str, frames: np.ndarray, resize: bool = False,
                 max_frames: int = DEFAULT_SWEEP_MAX_FRAMES) -> np.ndarray:
    """The frames of an array read from a file as the model's C-contiguous uint8 (T, 144, 256): the rules of
    :func:`decode_video` for .npy / .npz inputs (dimensions, length, pixel values; other frame sizes resized
    with ``resize``, else refused)."""
    if not isinstance(frames, np.ndarray):
        raise InvalidVideoError(f"{name}: holds a {type(frames).__name__}, not an array; save it with numpy.save")
    if frames.ndim != 3:
        raise wrong_dimensions(name, frames.shape)
    if frames.shape[0] > max_frames:
        raise too_long(name, frames.shape[0], max_frames)
    if 0 in frames.shape[1:]:
        raise InvalidVideoError(f"{name}: frames of {frames.shape[1]}x{frames.shape[2]} pixels hold no pixels; "
                                f"expected {FRAME_HEIGHT}x{FRAME_WIDTH}")
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
    if frames.dtype.kind not in "uif":  # the rule of validate_stimulus: no bool, complex, timedelta64, datetime64
        raise InvalidVideoError(f"{name}: dtype {frames.dtype} is not supported; use uint8 pixels")
    values = frames.astype(np.float64)
    if not np.isfinite(values).all() or (values != np.round(values)).any() or values.min() < 0 or values.max() > 255:
        raise InvalidVideoError(f"{name}: pixels must be integer values in [0, 255] (uint8); convert the video")
    return frames.astype(np.uint8)


def _decode_av(name: str, handle: BinaryIO, resize: bool, max_frames: int) -> np.ndarray:
    """Decode with PyAV and resample to 30 Hz while decoding, so at most ``max_frames`` frames are kept."""
    import av

    try:
        with av.open(handle, mode="r") as container:
            if not container.streams.video:
                raise InvalidVideoError(f"{name}: the file has no video stream")
            stream = container.streams.video[0]
            rate = _rate(stream)
            declared = _declared_frames(container, stream, rate)  # from the container's header, before decoding
            if declared is not None and declared > max_frames:
                raise too_long(name, declared, max_frames)
            sampler = SampleAndHold(rate, max_frames=max_frames, name=name,
                                    convert=lambda pixels: _frame_to_model(name, pixels, resize))
            for index, frame in enumerate(container.decode(stream)):
                sampler.add(frame.to_ndarray(format="gray"),  # (H, W) uint8 luma, full range
                            float(frame.time) if frame.time is not None else index / rate)
            return sampler.finish()
    except InvalidVideoError:
        raise
    except Exception as exc:  # av.error.InvalidDataError and friends
        raise InvalidVideoError(f"{name}: cannot decode video ({type(exc).__name__}: {exc}); re-encode it, e.g. "
                                f"H.264 in .mp4") from None


def _declared_frames(container, stream, rate: float) -> int | None:
    """Frames at 30 Hz the header declares: the stream's duration, else its frame count, else the container's
    duration (whichever is known first); None when none is."""
    if stream.duration is not None and stream.time_base is not None:
        seconds = float(stream.duration * stream.time_base)
    elif stream.frames:
        seconds = stream.frames / rate
    elif container.duration is not None:
        import av

        seconds = container.duration / av.time_base
    else:
        return None
    return int(round(seconds * FRAME_RATE_HZ))


def _frame_to_model(name: str, pixels: np.ndarray, resize: bool) -> np.ndarray:
    """One decoded (H, W) frame as (144, 256): resized with ``resize``, else refused when of another size."""
    if pixels.shape == (FRAME_HEIGHT, FRAME_WIDTH):
        return pixels
    if not resize:
        raise InvalidVideoError(f"{name}: frames are {pixels.shape[0]}x{pixels.shape[1]} pixels; expected "
                                f"{FRAME_HEIGHT}x{FRAME_WIDTH} (or pass --resize)")
    return resize_frames(pixels[None])[0]


def _rate(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else FRAME_RATE_HZ


class SampleAndHold:
    """Streaming sample-and-hold resampling of frames shown at given times to ``target`` Hz.

    Output frame k shows the last source frame whose time (relative to the first) is <= k / target; the output
    lasts (last time + 1 / rate) s, i.e. round(that * target) frames (at least one). Frames are emitted while
    they arrive, so a source that would exceed ``max_frames`` output frames is refused as soon as it does,
    before anything more is allocated. All source frames must have the shape of the first.

    Args:
        rate: nominal source frame rate (Hz), which sets how long the last frame stays on screen.
        target: output frame rate (Hz).
        max_frames: most output frames (None: no limit).
        name: input name for error messages.
        convert: applied once to each source frame that is emitted (e.g. resizing).
    """

    def __init__(self, rate: float, target: float = FRAME_RATE_HZ, max_frames: int | None = None,
                 name: str = "video", convert=None) -> None:
        self._rate, self._target, self._max, self._name = rate, target, max_frames, name
        self._convert = convert or (lambda frame: frame)
        self._out: list[np.ndarray] = []
        self._shape: tuple[int, ...] | None = None
        self._first_time = self._last_time = 0.0
        self._current: np.ndarray | None = None
        self._converted: np.ndarray | None = None
        self._n_in = 0

    def add(self, frame: np.ndarray, time: float) -> None:
        """Frame shown from ``time`` (s) on, in presentation order."""
        if self._shape is None:
            self._shape, self._first_time = frame.shape, time
        elif frame.shape != self._shape:
            raise InvalidVideoError(f"{self._name}: frame {self._n_in} at {time:.3f} s is {frame.shape}, but "
                                    f"the first frame is {self._shape}; re-encode the video at one frame size")
        else:
            self._emit_until(time - self._first_time)
        self._current, self._converted, self._last_time = frame, None, time - self._first_time
        self._n_in += 1

    def finish(self) -> np.ndarray:
        """The output frames, (T_out, ...) with T_out = max(1, round((last time + 1 / rate) * target))."""
        if self._current is None:
            raise InvalidVideoError(f"{self._name}: the video stream has no frames")
        n_out = max(1, int(round((self._last_time + 1.0 / self._rate) * self._target)))
        if self._max is not None and n_out > self._max:
            raise too_long(self._name, n_out, self._max)
        while len(self._out) < n_out:
            self._out.append(self._held())
        return np.stack(self._out[:n_out])

    def _emit_until(self, time: float) -> None:
        while len(self._out) / self._target + _SAMPLE_EPS_S < time:
            if self._max is not None and len(self._out) >= self._max:
                raise too_long(self._name, int(math.ceil(time * self._target)), self._max, at_least=True)
            self._out.append(self._held())

    def _held(self) -> np.ndarray:
        if self._converted is None:
            self._converted = self._convert(self._current)
        return self._converted


def resample_to_rate(frames: np.ndarray, times: np.ndarray, rate: float, target: float = FRAME_RATE_HZ,
                     max_frames: int | None = None) -> np.ndarray:
    """Sample-and-hold resampling of frames shown at ``times`` (s) to ``target`` Hz (see :class:`SampleAndHold`).

    Args:
        frames: (T_in, H, W) frames in presentation order.
        times: (T_in,) presentation times in seconds.
        rate: nominal source frame rate (Hz), which sets how long the last frame stays on screen.
        target: output frame rate (Hz).
        max_frames: most output frames; a longer result is refused before it is allocated.

    Returns:
        (T_out, H, W) with T_out = round(duration * target), duration = last time - first time + 1 / rate.
    """
    sampler = SampleAndHold(rate, target, max_frames)
    for frame, time in zip(frames, times):
        sampler.add(frame, float(time))
    return sampler.finish()


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
