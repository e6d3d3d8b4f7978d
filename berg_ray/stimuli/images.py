"""Static images held for N frames and grey blanks.

Images come from files (any format FFmpeg decodes as an image: PNG, JPEG, BMP, TIFF, ...; decoded with PyAV, a
dependency already) or arrays. Colour becomes grey with the ITU-R BT.601 luma weights; the image is scaled to
cover 144 x 256 and centre-cropped to 16:9 (no letterbox), with an antialiased bilinear resize.
"""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F

from berg_ray.config import FRAME_HEIGHT, FRAME_WIDTH, STIMULUS_MEAN_LUMINANCE
from berg_ray.errors import StimulusParameterError
from berg_ray.stimuli.geometry import check_n_frames, check_range, to_frames

_LUMA = np.array([0.299, 0.587, 0.114])


def blank(n_frames: int, luminance: float = STIMULUS_MEAN_LUMINANCE) -> np.ndarray:
    """Uniform grey frames: uint8 (T, 144, 256) of value round(luminance)."""
    n_frames = check_n_frames(n_frames, minimum=0)
    value = check_range(luminance, "luminance", 0.0, 255.0, " (pixel value)")
    return np.full((n_frames, FRAME_HEIGHT, FRAME_WIDTH), round(value), dtype=np.uint8)


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image file to float64 grey values (H, W) in [0, 255].

    Raises:
        StimulusParameterError: the file is missing or not a decodable image.
    """
    file = Path(path)
    if not file.is_file():
        raise StimulusParameterError(f"image file {str(file)!r} does not exist; pass the path of a PNG/JPEG/... file")
    try:
        with av.open(str(file)) as container:
            frame = next(container.decode(video=0))
            rgb = frame.to_ndarray(format="rgb24")
    except (av.FFmpegError, StopIteration, ValueError) as exc:
        raise StimulusParameterError(f"cannot decode {str(file)!r} as an image ({exc}); use PNG, JPEG, BMP or "
                                     "TIFF") from None
    return rgb.astype(np.float64) @ _LUMA


def fit_to_screen(image: np.ndarray) -> np.ndarray:
    """Grey image (H, W) or colour (H, W, 3) in [0, 255] -> float64 (144, 256): scale to cover, centre-crop to 16:9.

    Raises:
        StimulusParameterError: wrong shape, non-finite values or values outside [0, 255].
    """
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] in (3, 4):
        array = array[..., :3].astype(np.float64) @ _LUMA
    if array.ndim != 2 or min(array.shape) < 1 or not np.issubdtype(array.dtype, np.number):
        raise StimulusParameterError(f"image must be a numeric (H, W) grey or (H, W, 3) colour array, got shape "
                                     f"{np.shape(image)} dtype {np.asarray(image).dtype}")
    array = array.astype(np.float64)
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 255:
        raise StimulusParameterError("image values must be finite pixel values in [0, 255]")
    height, width = array.shape
    scale = max(FRAME_HEIGHT / height, FRAME_WIDTH / width)
    crop_h, crop_w = min(height, round(FRAME_HEIGHT / scale)), min(width, round(FRAME_WIDTH / scale))
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    cropped = torch.from_numpy(np.ascontiguousarray(array[top:top + crop_h, left:left + crop_w]))[None, None]
    resized = F.interpolate(cropped, size=(FRAME_HEIGHT, FRAME_WIDTH), mode="bilinear", align_corners=False,
                            antialias=True)
    return resized[0, 0].numpy()


def static_image(image: str | os.PathLike[str] | np.ndarray, n_frames: int) -> np.ndarray:
    """An image held still for ``n_frames`` frames.

    Args:
        image: path of an image file, or an array (H, W) grey / (H, W, 3) RGB with values in [0, 255].
        n_frames: frames T at 30 Hz.

    Returns:
        uint8 (T, 144, 256): the grey image scaled to cover the screen and centre-cropped to 16:9.
    """
    n_frames = check_n_frames(n_frames)
    pixels = load_image(image) if isinstance(image, (str, os.PathLike)) else image
    frame = to_frames(fit_to_screen(pixels))
    return np.repeat(frame[None], n_frames, axis=0)
