"""Frame counts are checked from headers before data is read (issue 16, finding 3): a sweep input with more than
max_frames frames is refused after reading a bounded prefix of it, on a local disk and on S3 (SeaweedFS)."""

from __future__ import annotations

import io
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from berg_ray.errors import InvalidVideoError
from berg_ray.storage import open_store, resolve_s3_options
from berg_ray.sweep.pipeline import decode_input
from berg_ray.sweep.video import decode_video
from tests.sweep.helpers import mp4_bytes, npy_bytes

FRAME = (144, 256)


def _read_chars() -> int:
    """Bytes this process has read through read(2) so far (/proc/self/io rchar)."""
    with open("/proc/self/io") as handle:
        return int(next(line for line in handle if line.startswith("rchar:")).split()[1])


def _sparse_npy(path: Path, shape: tuple[int, ...]) -> None:
    """A .npy of uint8 ``shape`` whose data is a hole: the full size on disk, no blocks written."""
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": "|u1", "fortran_order": False, "shape": shape})
        handle.truncate(handle.tell() + int(np.prod(shape)))


def _refused_cost(store, name: str, max_frames: int, pattern: str) -> tuple[int, int]:
    """(peak traced bytes, bytes read) of decode_input refusing ``name``."""
    tracemalloc.start()
    try:
        before = _read_chars()
        with pytest.raises(InvalidVideoError, match=pattern):
            decode_input(store, name, resize=True, skip_frames=0, max_frames=max_frames)
        return tracemalloc.get_traced_memory()[1], _read_chars() - before
    finally:
        tracemalloc.stop()


def test_a_long_sparse_npy_is_refused_from_its_header(tmp_path):
    _sparse_npy(tmp_path / "long.npy", (20_000, *FRAME))  # 737 MB
    peak, read = _refused_cost(open_store(str(tmp_path)), "long.npy", 100, "long.npy: 20000 frames .*max_frames=100")
    assert peak < 2e6 and read < 1e6, (peak, read)


def test_a_truncated_npy_is_refused_before_allocating(tmp_path):
    with open(tmp_path / "short.npy", "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": "<f8", "fortran_order": False,
                                                      "shape": (90, 100_000, 100_000)})
    peak, _ = _refused_cost(open_store(str(tmp_path)), "short.npy", 100, "declares .* bytes .* holds")
    assert peak < 2e6


def test_a_long_npz_member_is_refused_without_inflating(tmp_path):
    buffer = io.BytesIO()
    np.savez_compressed(buffer, video=np.zeros((2_000, *FRAME), np.uint8))  # 74 MB in a ~75 KB archive
    (tmp_path / "long.npz").write_bytes(buffer.getvalue())
    peak, read = _refused_cost(open_store(str(tmp_path)), "long.npz", 1_999, "2000 frames .*max_frames=1999")
    assert peak < 5e6 and read < 1e6, (peak, read)


def test_a_long_video_is_refused_from_its_container(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (240, *FRAME), dtype=np.uint8)  # incompressible: ~8 MB
    (tmp_path / "long.mp4").write_bytes(mp4_bytes(noise))
    assert (tmp_path / "long.mp4").stat().st_size > 4e6
    peak, read = _refused_cost(open_store(str(tmp_path)), "long.mp4", 100, "240 frames .*max_frames=100")
    assert peak < 4e6 and read < 2e6, (peak, read)


def test_inputs_within_the_limit_decode_as_before(fixture_stimuli, tmp_path):
    clip = fixture_stimuli[0, :8]
    buffer = io.BytesIO()
    np.savez(buffer, video=clip)
    files = {"a.npy": npy_bytes(clip), "b.npz": buffer.getvalue(), "c.mp4": mp4_bytes(clip)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    store = open_store(str(tmp_path))
    for name, data in files.items():  # the same frames as decoding the whole file from memory
        expected = decode_video(name, data, max_frames=8)
        assert decode_input(store, name, resize=False, skip_frames=0, max_frames=8).tolist() == expected.tolist()
        with pytest.raises(InvalidVideoError, match="more than max_frames=7"):
            decode_input(store, name, resize=False, skip_frames=0, max_frames=7)


def test_s3_inputs_are_read_by_range(s3_env, fixture_stimuli):
    bucket, client = s3_env.new_bucket(), s3_env.client()
    clip = fixture_stimuli[0, :8]
    long = npy_bytes(np.zeros((600, *FRAME), np.uint8))  # 22 MB
    for key, data in (("in/long.npy", long), ("in/a.npy", npy_bytes(clip)), ("in/b.mp4", mp4_bytes(clip))):
        client.put_object(Bucket=bucket, Key=key, Body=data)
    store = open_store(f"s3://{bucket}/in/", resolve_s3_options())
    peak, _ = _refused_cost(store, "long.npy", 100, "600 frames .*max_frames=100")
    assert peak < 4e6, peak
    for name in ("a.npy", "b.mp4"):
        expected = decode_video(name, store.read_bytes(name), max_frames=8)
        assert decode_input(store, name, resize=False, skip_frames=0, max_frames=8).tolist() == expected.tolist()
    with store.open_read("a.npy") as handle:  # seek and read anywhere, and past the end
        handle.seek(-4, io.SEEK_END)
        assert handle.read() == npy_bytes(clip)[-4:] and handle.read() == b""
        handle.seek(1)
        assert handle.read(5) == b"NUMPY"
