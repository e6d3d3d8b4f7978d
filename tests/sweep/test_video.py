"""Decoding of sweep inputs: .npy, .npz, .mp4 (PyAV, grey luma, 30 Hz), resize and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from berg_ray.errors import InvalidVideoError
from berg_ray.sweep.video import decode_video, resample_to_rate, resize_frames
from tests.sweep.helpers import mp4_bytes, npy_bytes


@pytest.fixture(scope="module")
def clip(fixture_stimuli) -> np.ndarray:
    return fixture_stimuli[0, :8]


def test_npy_and_npz(clip):
    assert np.array_equal(decode_video("a.npy", npy_bytes(clip)), clip)
    assert np.array_equal(decode_video("a.npy", npy_bytes(clip.astype(np.float32))), clip)
    import io

    for arrays in ({"frames": clip}, {"video": clip, "labels": np.zeros(3)}):
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        assert np.array_equal(decode_video("a.npz", buffer.getvalue()), clip)
    buffer = io.BytesIO()
    np.savez(buffer, a=clip, b=clip)
    with pytest.raises(InvalidVideoError, match="name the video 'video'"):
        decode_video("a.npz", buffer.getvalue())


@pytest.mark.parametrize("data, message", [
    (b"garbage", "not a readable .npy"),
    (npy_bytes(np.zeros((4, 10, 10), np.uint8)), "--resize"),
    (npy_bytes(np.zeros((4, 144, 256, 3), np.uint8)), "expected \\[T, 144, 256\\]"),
    (npy_bytes(np.full((2, 144, 256), 300.0)), "range|\\[0, 255\\]"),
])
def test_bad_arrays_name_the_problem(data, message):
    with pytest.raises(InvalidVideoError, match=message):
        decode_video("bad.npy", data)


def test_mp4_decodes_to_grey_frames(clip):
    decoded = decode_video("clip.mp4", mp4_bytes(clip))
    assert decoded.shape == clip.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - clip).max() <= 1  # lossless H.264; YUV range rounding only
    with pytest.raises(InvalidVideoError, match="cannot decode video"):
        decode_video("broken.mp4", mp4_bytes(clip)[:200])


def test_mp4_is_resampled_to_30_hz(clip):
    assert decode_video("fast.mp4", mp4_bytes(clip, rate=60)).shape[0] == 4
    slow = decode_video("slow.mp4", mp4_bytes(clip[:4], rate=15))
    assert slow.shape[0] == 8 and np.abs(slow[1].astype(int) - slow[0]).max() == 0  # each frame held twice


def test_resample_sample_and_hold():
    frames = np.arange(5)[:, None, None] * np.ones((1, 2, 2), np.uint8)
    out = resample_to_rate(frames, np.arange(5) / 10.0, rate=10.0, target=30.0)
    assert out.shape[0] == 15 and out[:, 0, 0].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]


def test_resize_is_opt_in_and_bilinear(clip):
    small = clip[:, ::2, ::2]
    with pytest.raises(InvalidVideoError, match="--resize"):
        decode_video("small.npy", npy_bytes(small))
    resized = decode_video("small.npy", npy_bytes(small), resize=True)
    assert resized.shape == clip.shape
    assert np.array_equal(resize_frames(clip), clip)  # identity at the target size
    flat = np.full((2, 72, 128), 77, np.uint8)
    assert np.all(resize_frames(flat) == 77)


def test_unsupported_suffix():
    with pytest.raises(InvalidVideoError, match="unsupported file type"):
        decode_video("a.gif", b"")


@pytest.mark.parametrize("dtype", ["timedelta64[s]", "datetime64[s]", "bool", "complex64"])
def test_resize_refuses_what_the_api_refuses(dtype):
    """--resize converts pixels before the frame-size check: the same dtype rule as validate_stimulus applies."""
    with pytest.raises(InvalidVideoError, match="dtype"):
        decode_video("odd.npy", npy_bytes(np.zeros((2, 10, 10), dtype=dtype)), resize=True)
