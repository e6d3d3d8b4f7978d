"""Planning (done set, micro-batches), output naming, Parquet schemas and the manifest check (no Ray)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from berg_ray.errors import StorageError
from berg_ray.storage import open_store
from berg_ray.sweep import layout
from berg_ray.sweep.plan import Shard, Stimulus, list_stimuli, plan_shards

SCANS = ["session-8_scan-5", "session-4_scan-7"]


def _stimuli(n: int) -> list[Stimulus]:
    return [Stimulus(f"s{i:02d}", f"s{i:02d}.npy", 10) for i in range(n)]


def test_plan_covers_every_missing_pair_exactly_once():
    stimuli = _stimuli(7)
    done = {SCANS[0]: {"s00", "s01", "s02"}, SCANS[1]: {"s00"}}
    shards = plan_shards(stimuli, SCANS, done, batch_size=2)
    pairs = [(stimulus_id, scan) for shard in shards for scan, ids in shard.todo for stimulus_id in ids]
    expected = {(s.stimulus_id, c) for s in stimuli for c in SCANS} - {(i, c) for c in SCANS for i in done[c]}
    assert sorted(pairs) == sorted(expected) and len(pairs) == len(set(pairs))
    assert all(len(shard.stimuli) <= 2 for shard in shards)
    assert plan_shards(stimuli, SCANS, done, 2) == shards  # deterministic
    fresh = plan_shards(stimuli, SCANS, {}, 2)  # micro-batches do not move when some work is done
    assert [ids for shard in fresh for _, ids in shard.todo][-4:] == [ids for shard in shards for _, ids in
                                                                       shard.todo][-4:]
    assert Shard.from_json(shards[0].to_json()) == shards[0]
    assert plan_shards(stimuli, SCANS, {c: {s.stimulus_id for s in stimuli} for c in SCANS}, 2) == []


def test_listing_ids_duplicates_and_ignored(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("a.npy", "sub/b.MP4", "c.npy", "c.mp4", "notes.txt", "_hidden/x.npy"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    listing = list_stimuli(open_store(str(tmp_path)))
    assert [s.stimulus_id for s in listing.stimuli] == ["a", "sub/b"]
    assert sorted(e["input"].rsplit("/", 1)[1] for e in listing.errors) == ["c.mp4", "c.npy"]
    assert "ambiguous" in listing.errors[0]["error"] and listing.ignored == 2


def test_part_names_are_deterministic():
    options = layout.content_options("none", 0, "float32")
    name = layout.part_name(SCANS[0], ["a", "b"], options)
    assert name == layout.part_name(SCANS[0], ["a", "b"], options) and layout.is_part_name(name)
    assert name != layout.part_name(SCANS[1], ["a", "b"], options)
    assert name != layout.part_name(SCANS[0], ["a", "b"], layout.content_options("mean", 0, "float32"))
    assert name != layout.part_name(SCANS[0], ["a", "b"], layout.content_options("none", 0, "bfloat16"))
    assert not layout.is_part_name("_units/x.parquet")


@pytest.mark.parametrize("reduce", ["none", "mean"])
def test_responses_table_schema_and_done_set(tmp_path, reduce):
    rng = np.random.default_rng(0)
    responses = [rng.random((5, 3), dtype=np.float32), rng.random((2, 3), dtype=np.float32)]
    values = responses if reduce == "none" else [r.mean(0) for r in responses]
    table = layout.responses_table(["a", "b"], SCANS[0], [5, 2], values, reduce)
    store = open_store(str(tmp_path))
    name = layout.part_name(SCANS[0], ["a", "b"], {})
    layout.write_table(store, name, table, layout.RESPONSES_SCHEMAS[reduce], {"scan": SCANS[0],
                                                                            "stimulus_ids": ["a", "b"]})
    read = pq.read_table(tmp_path)  # plain pyarrow, directory read
    assert read.column("n_frames").to_pylist() == [5, 2]
    for row, expected in zip(read.column("responses").to_pylist(), values):
        np.testing.assert_array_equal(np.asarray(row, np.float32), expected)
    assert layout.read_done(store, [name]) == {SCANS[0]: {"a", "b"}}
    with pytest.raises(Exception, match="schema"):
        layout.write_table(store, name, table, layout.RESPONSES_SCHEMAS["mean" if reduce == "none" else "none"])


def test_manifest_refuses_other_content_options(tmp_path):
    store = open_store(str(tmp_path))
    options = layout.content_options("none", 0, "float32")
    assert layout.check_manifest(store, options)
    layout.write_manifest(store, options)
    assert not layout.check_manifest(store, options)
    assert json.loads((tmp_path / layout.MANIFEST_FILE).read_text()) == options
    with pytest.raises(StorageError, match="new --out"):
        layout.check_manifest(store, layout.content_options("mean", 10, "float32"))


def test_units_table(demo_berg_dir):
    from berg_ray.checkpoint.release import read_scan_units

    units = read_scan_units(demo_berg_dir, SCANS[0])
    table = layout.units_table(units)
    assert table.schema.equals(layout.UNITS_SCHEMA) and table.num_rows == units.n_units
    assert table.column("column_index").to_pylist() == list(range(units.n_units))
