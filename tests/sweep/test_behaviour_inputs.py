"""Behaviour carried by sweep inputs (issue 17 A): a .npz with ``stimulus`` plus ``perspectives`` and/or
``modulations`` decodes to checked float32 [T, 2] arrays, a bad one is that file's error naming the problem, and the
output schema records what was given (no Ray needed; the sweep itself: test_sweep_e2e.py)."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pyarrow.parquet as pq
import pytest

from berg_ray.errors import InvalidBehaviourError, InvalidVideoError, StorageError
from berg_ray.storage import open_store, resolve_s3_options
from berg_ray.sweep import layout
from berg_ray.sweep.pipeline import decode_shards, read_input
from berg_ray.sweep.plan import list_stimuli, plan_shards
from tests.sweep.helpers import npy_bytes

T = 8


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def clip(fixture_stimuli) -> np.ndarray:
    return fixture_stimuli[0, :T]


def test_npz_behaviour_members_are_read_and_checked(clip, tmp_path):
    eye = np.linspace(-1, 1, T * 2).reshape(T, 2)  # float64 on disk: the model gets float32
    files = {"both.npz": _npz(stimulus=clip, perspectives=eye, modulations=-eye),
             "eye.npz": _npz(video=clip, perspectives=eye), "single.npz": _npz(frames=clip, modulations=eye),
             "plain.npy": npy_bytes(clip)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    store = open_store(str(tmp_path))
    both = read_input(store, "both.npz", resize=False, skip_frames=0, max_frames=100)
    assert both.video.tolist() == clip.tolist() and both.perspectives.dtype == np.float32
    np.testing.assert_array_equal(both.modulations, (-eye).astype(np.float32))
    assert read_input(store, "eye.npz", False, 0, 100).modulations is None
    single = read_input(store, "single.npz", False, 0, 100)  # the one array that is not behaviour is the video
    assert single.perspectives is None and single.modulations.shape == (T, 2)
    assert read_input(store, "plain.npy", False, 0, 100).behaviour == (None, None)


def test_behaviour_is_read_from_s3_by_range(s3_env, clip):
    bucket, client = s3_env.new_bucket(), s3_env.client()
    eye = np.ones((T, 2), np.float32)
    client.put_object(Bucket=bucket, Key="in/a.npz", Body=_npz(stimulus=clip, perspectives=eye))
    item = read_input(open_store(f"s3://{bucket}/in/", resolve_s3_options()), "a.npz", False, 0, 100)
    assert item.video.tolist() == clip.tolist() and item.perspectives.tolist() == eye.tolist()


@pytest.mark.parametrize("arrays, error, message", [
    ({"perspectives": np.zeros((T - 1, 2))}, InvalidBehaviourError,
     re.escape("bad.npz: perspectives (pupil centre x, y) has shape [7, 2]; expected [T, 2] = [8, 2]")),
    ({"modulations": np.zeros((T, 3))}, InvalidBehaviourError, "bad.npz: modulations .* has shape \\[8, 3\\]"),
    ({"modulations": np.full((T, 2), np.nan)}, InvalidBehaviourError, "bad.npz: modulations contains NaN"),
    ({"perspectives": np.zeros((T, 2), bool)}, InvalidBehaviourError, "bad.npz: perspectives has dtype bool"),
    ({"perspectives": np.zeros((10_000, 2))}, InvalidBehaviourError, "more than max_frames=100 rows"),
    ({"perspective": np.zeros((T, 2))}, InvalidVideoError, "member 'perspective' is not an input; name the "
                                                           "behaviour 'perspectives'"),
])
def test_a_bad_behaviour_member_is_that_files_error(clip, tmp_path, arrays, error, message):
    (tmp_path / "bad.npz").write_bytes(_npz(stimulus=clip, **arrays))
    (tmp_path / "good.npz").write_bytes(_npz(stimulus=clip, modulations=np.ones((T, 2))))
    store = open_store(str(tmp_path))
    with pytest.raises(error, match=message):
        read_input(store, "bad.npz", False, 0, 100)
    shard = plan_shards(list_stimuli(store).stimuli, ["session-8_scan-5"], {}, batch_size=10)[0]
    out = decode_shards({"shard": np.array([shard.to_json()], dtype=object)}, store, resize=False, skip_frames=0,
                        max_frames=100)
    [failed] = json.loads(out["errors"][0])
    assert failed["stimulus_id"] == "bad" and failed["error_type"] == error.__name__
    assert json.loads(out["lengths"][0]) == [["good", T]] and json.loads(out["given"][0]) == [[False, True]]
    np.testing.assert_array_equal(np.frombuffer(out["behaviour"][0], np.float32), 1.0)


@pytest.mark.parametrize("reduce", ["none", "mean"])
def test_responses_record_the_behaviour_given(tmp_path, reduce):
    values = [np.ones((2, 3), np.float32)] * 3
    values = values if reduce == "none" else [v[0] for v in values]
    table = layout.responses_table(["a", "b", "c"], "session-8_scan-5", [2, 2, 2], values, reduce,
                                   [True, False, True], [False, False, True])
    store = open_store(str(tmp_path))
    layout.write_table(store, "part-x.parquet", table, layout.RESPONSES_SCHEMAS[reduce])
    read = pq.read_table(tmp_path)
    assert read.column("perspectives_given").to_pylist() == [True, False, True]
    assert read.column("modulations_given").to_pylist() == [False, False, True]
    default = layout.responses_table(["a"], "session-8_scan-5", [2], values[:1], reduce)
    assert default.column("perspectives_given").to_pylist() == [False] and not default.schema.field(
        "modulations_given").nullable


def test_an_output_of_the_previous_format_is_refused(tmp_path):
    store = open_store(str(tmp_path))
    options = layout.content_options("none", 0, "float32")
    layout.write_manifest(store, {**options, "format": 1})
    with pytest.raises(StorageError, match="output format 1, written by another version of berg_ray; this one "
                                           "writes format 2"):
        layout.check_manifest(store, options)
