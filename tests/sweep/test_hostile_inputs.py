"""Hostile sweep inputs (issue 8, items 6-7): every malformed file is one clear InvalidVideoError, and no input
can make the decoder allocate more than ``max_frames`` frames (no Ray needed)."""

from __future__ import annotations

import io
import json
import tracemalloc
import zipfile

import numpy as np
import pytest

from berg_ray.errors import InvalidVideoError
from berg_ray.storage import open_store
from berg_ray.sweep.pipeline import decode_shards
from berg_ray.sweep.plan import list_stimuli, plan_shards
from berg_ray.sweep.video import SampleAndHold, decode_video, resample_to_rate
from tests.sweep.helpers import mixed_size_mkv_bytes, mp4_bytes, npy_bytes, timed_mp4_bytes

FRAME = (144, 256)


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _bad_crc_npz(clip: np.ndarray) -> bytes:
    data = bytearray(_npz(video=clip))
    data[200] ^= 0xFF  # inside the stored (uncompressed) member: its CRC no longer matches
    return bytes(data)


def _not_npy_npz() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("video", b"these are not numpy bytes")
    return buffer.getvalue()


def hostile_files(clip: np.ndarray) -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, pattern of the expected error): the files issue 8 reported, plus neighbours."""
    return {
        "objects.npz": (_npz(video=np.array([{"a": 1}, None], dtype=object)), "[Oo]bject arrays"),
        "bad_crc.npz": (_bad_crc_npz(clip), "BadZipFile|CRC"),
        "not_npy.npz": (_not_npy_npz(), "not a .npy array"),
        "mixed.mkv": (mixed_size_mkv_bytes(clip[:2], np.zeros((2, 100, 120), np.uint8)), "one frame size"),
        "empty_rows.npy": (npy_bytes(np.zeros((5, 0, 10), np.uint8)), "hold no pixels"),
        "ten_hours.mp4": (timed_mp4_bytes(np.zeros((2, *FRAME), np.uint8), [0.0, 36000.0]), "max_frames"),
        "ten_minutes.mp4": (timed_mp4_bytes(clip[:2], [0.0, 600.0]), "max_frames"),
    }


@pytest.fixture(scope="module")
def clip(fixture_stimuli) -> np.ndarray:
    return fixture_stimuli[0, :8]


@pytest.mark.parametrize("resize", [False, True])
def test_each_hostile_file_is_one_clear_error(clip, resize):
    for name, (data, pattern) in hostile_files(clip).items():
        with pytest.raises(InvalidVideoError, match=pattern) as info:
            decode_video(name, data, resize=resize)
        assert str(info.value).startswith(name), info.value


def test_amplified_videos_are_refused_without_allocating(clip):
    tracemalloc.start()
    try:
        for seconds, frames in ((36000.0, np.zeros((2, *FRAME), np.uint8)), (600.0, clip[:2])):
            data = timed_mp4_bytes(frames, [0.0, seconds])
            assert len(data) < 60_000
            tracemalloc.reset_peak()
            with pytest.raises(InvalidVideoError, match="raise --max-frames"):
                decode_video("long.mp4", data)
            assert tracemalloc.get_traced_memory()[1] < 50e6  # 18,000 frames alone would be 664 MB
        bomb = _compressed_npz(np.zeros((10, 1000, 1000), np.uint8))  # 10 MB of zeros in a ~10 KB archive
        assert len(bomb) < 100_000
        tracemalloc.reset_peak()
        with pytest.raises(InvalidVideoError, match="unpacks to"):
            decode_video("bomb.npz", bomb, resize=True, max_frames=10)
        assert tracemalloc.get_traced_memory()[1] < 5e6
    finally:
        tracemalloc.stop()


def _compressed_npz(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, video=array)
    return buffer.getvalue()


def test_max_frames_bounds_every_input_kind(clip):
    for name, data in (("a.npy", npy_bytes(clip)), ("a.npz", _npz(video=clip)), ("a.mp4", mp4_bytes(clip))):
        assert decode_video(name, data, max_frames=8).shape[0] == 8
        with pytest.raises(InvalidVideoError, match="more than max_frames=7"):
            decode_video(name, data, max_frames=7)
    gap = timed_mp4_bytes(clip[:2], [0.0, 2.0])  # 2 s gap: 60 frames + the last one held for 1/rate
    assert decode_video("gap.mp4", gap, max_frames=100).shape[0] > 60
    with pytest.raises(InvalidVideoError, match="max_frames=30"):
        decode_video("gap.mp4", gap, max_frames=30)


def test_streaming_resample_matches_its_definition():
    rng = np.random.default_rng(1)
    for rate, target in ((10.0, 30.0), (60.0, 30.0), (29.97, 30.0), (7.0, 30.0)):
        times = np.cumsum(rng.uniform(0.2, 1.8, 20)) / rate
        frames = np.arange(20)[:, None, None] * np.ones((1, 2, 3), np.uint8)
        out = resample_to_rate(frames, times, rate, target)
        relative = times - times[0]
        n_out = max(1, int(round((relative[-1] + 1 / rate) * target)))
        index = np.clip(np.searchsorted(relative, np.arange(n_out) / target + 1e-6, side="right") - 1, 0, 19)
        assert np.array_equal(out, frames[index])
        with pytest.raises(InvalidVideoError, match="max_frames"):
            resample_to_rate(frames, times, rate, target, max_frames=n_out - 1)


def test_a_gap_without_declared_duration_stops_while_decoding():
    sampler = SampleAndHold(rate=30.0, max_frames=100, name="gap.mkv")
    sampler.add(np.zeros(FRAME, np.uint8), 0.0)
    with pytest.raises(InvalidVideoError, match="gap.mkv: at least 30000 frames .*max_frames=100"):
        sampler.add(np.ones(FRAME, np.uint8), 1000.0)  # refused after holding 100 frames, not 30,000
    assert len(sampler._out) == 100


def test_decode_shards_lists_every_bad_file_and_keeps_the_good(clip, tmp_path):
    files = hostile_files(clip)
    for name, (data, _) in files.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "good.npy").write_bytes(npy_bytes(clip))
    store = open_store(str(tmp_path))
    shards = plan_shards(list_stimuli(store).stimuli, ["session-8_scan-5"], {}, batch_size=100)
    out = decode_shards({"shard": np.array([shards[0].to_json()], dtype=object)}, store, resize=True,
                        skip_frames=0, max_frames=1000)
    errors = json.loads(out["errors"][0])
    assert sorted(e["stimulus_id"] for e in errors) == sorted(name.split(".")[0] for name in files)
    for error in errors:
        name = error["input"].rsplit("/", 1)[1]
        assert error["error_type"] == "InvalidVideoError" and error["error"].startswith(name)
    assert json.loads(out["lengths"][0]) == [["good", 8]]
    assert np.frombuffer(out["frames"][0], np.uint8).reshape(clip.shape).tolist() == clip.tolist()


def test_decode_shards_records_any_exception_type_of_one_input(clip, tmp_path):
    (tmp_path / "good.npy").write_bytes(npy_bytes(clip))
    (tmp_path / "gone.npy").write_bytes(npy_bytes(clip))
    store = open_store(str(tmp_path))
    shard = plan_shards(list_stimuli(store).stimuli, ["session-8_scan-5"], {}, batch_size=100)[0]
    (tmp_path / "gone.npy").unlink()  # deleted between listing and reading
    (tmp_path / "good.npy").chmod(0o000)
    try:
        unreadable = not (tmp_path / "good.npy").exists() or not _readable(tmp_path / "good.npy")
        out = decode_shards({"shard": np.array([shard.to_json()], dtype=object)}, store, resize=False,
                            skip_frames=0, max_frames=1000)
    finally:
        (tmp_path / "good.npy").chmod(0o644)
    errors = {e["stimulus_id"]: e for e in json.loads(out["errors"][0])}
    assert "gone" in errors and errors["gone"]["error_type"] == "StorageError"
    assert ("good" in errors) == unreadable


def _readable(path) -> bool:
    try:
        path.read_bytes()
        return True
    except OSError:
        return False


def test_a_bug_outside_the_per_file_decode_is_not_swallowed(tmp_path):
    store = open_store(str(tmp_path))
    with pytest.raises(Exception) as info:  # a malformed micro-batch is our bug, not a bad input
        decode_shards({"shard": np.array(["{not json"], dtype=object)}, store, resize=False, skip_frames=0,
                      max_frames=10)
    assert not isinstance(info.value, InvalidVideoError)
