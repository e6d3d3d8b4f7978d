"""Damaged outputs, bad endpoints, changed inputs and actor sizing (issue 8: items 9-10 and the `sweep` tracebacks);
none of these needs a Ray cluster: each is decided before any compute."""

from __future__ import annotations

import re

import numpy as np
import pytest

from berg_ray.cli import main
from berg_ray.config import SweepArgs
from berg_ray.errors import BergRayError
from berg_ray.storage import open_store
from berg_ray.sweep import layout
from berg_ray.sweep.plan import Stimulus, changed_parts, list_stimuli
from berg_ray.sweep.resources import actor_memory_bytes, size_workers

SCAN = "session-8_scan-5"
GB = 10**9


def _sweep_cli(berg_dir, source, target, *extra) -> list[str]:
    return ["sweep", "--berg-dir", str(berg_dir), "--input", str(source), "--out", str(target), "--sessions", SCAN,
            "--quiet", *extra]


def _one_line_error(capsys, argv: list[str], pattern: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert re.search(pattern, err), err
    return err


@pytest.fixture
def source(tmp_path, fixture_stimuli):
    directory = tmp_path / "in"
    directory.mkdir()
    np.save(directory / "a.npy", fixture_stimuli[0, :4])
    return directory


def test_endpoint_without_scheme_is_one_line(capsys, fixture_berg_dir, source, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    argv = _sweep_cli(fixture_berg_dir, "s3://bucket/in/", tmp_path / "out", "--s3-endpoint-url", "127.0.0.1:18334")
    _one_line_error(capsys, argv, "127.0.0.1:18334.*http://127.0.0.1:18334")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "localhost:9000")
    _one_line_error(capsys, _sweep_cli(fixture_berg_dir, source, "s3://bucket/out/"), "AWS_ENDPOINT_URL")


def test_max_frames_must_be_positive(capsys, fixture_berg_dir, source, tmp_path):
    _one_line_error(capsys, _sweep_cli(fixture_berg_dir, source, tmp_path / "out", "--max-frames", "0"),
                    "--max-frames must be >= 1, got 0")


def test_corrupt_manifest_is_one_line(capsys, fixture_berg_dir, source, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for content in (b"{\"reduce\": \"none\", ", b"[1, 2]", b"\xff\xfe"):
        (out / layout.MANIFEST_FILE).write_bytes(content)
        _one_line_error(capsys, _sweep_cli(fixture_berg_dir, source, out), "_sweep.json is damaged")
    assert not (out / "_lease.json").exists()  # released after the refusal


def test_zero_length_part_file_is_one_line_naming_it(capsys, fixture_berg_dir, source, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    name = layout.part_name(SCAN, ["a"], layout.content_options("none", 0, "float32"))
    (out / name).write_bytes(b"")
    _one_line_error(capsys, _sweep_cli(fixture_berg_dir, source, out), f"{name} is not a readable Parquet.*delete it")


def test_changed_inputs_select_the_files_holding_their_rows(tmp_path):
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.npy").write_bytes(b"x" * 10)
    stimuli = list_stimuli(open_store(str(tmp_path))).stimuli
    assert all(s.version for s in stimuli)  # local: mtime in ns
    keys = {s.stimulus_id: s.input_key for s in stimuli}
    footers = {"part-1": {"scan": SCAN, "stimulus_ids": ["a", "b"], "inputs": {"a": keys["a"], "b": keys["b"]}},
               "part-2": {"scan": SCAN, "stimulus_ids": ["c"], "inputs": {"c": keys["c"]}},
               "part-old": {"scan": SCAN, "stimulus_ids": ["c"]}}  # written before inputs were recorded
    assert changed_parts(stimuli, footers) == {}
    (tmp_path / "b.npy").write_bytes(b"y" * 11)  # size and mtime change
    changed = list_stimuli(open_store(str(tmp_path))).stimuli
    assert changed_parts(changed, footers) == {"part-1": {"b"}}
    same_size = [Stimulus(s.stimulus_id, s.name, s.size, "etag-2" if s.stimulus_id == "c" else s.version)
                 for s in stimuli]  # e.g. S3: same size, new ETag
    assert changed_parts(same_size, footers) == {"part-2": {"c"}}
    assert changed_parts([s for s in changed if s.stimulus_id != "b"], footers) == {}  # removed input: kept


def _args(**extra) -> SweepArgs:
    return SweepArgs(berg_dir="b", input="i", output="o", **extra)


def test_actors_reserve_memory_and_never_outnumber_what_fits():
    per_actor = actor_memory_bytes(8, 32, on_gpu=False)
    assert per_actor == actor_memory_bytes(4, 64, on_gpu=False) + 4 * (actor_memory_bytes(1, 0, False)
                                                                       - actor_memory_bytes(0, 0, False))
    assert actor_memory_bytes(8, 64, False) > per_actor > actor_memory_bytes(8, 32, on_gpu=True)
    nodes = [{"CPU": 16.0, "memory": 2.5 * per_actor}, {"CPU": 16.0, "memory": 1.5 * per_actor}]
    workers = size_workers(_args(num_cpus_per_worker=1.0), n_shards=100, nodes=nodes, on_gpu=False)
    assert workers.count == 3 and workers.memory == per_actor  # 2 + 1 fit, although 31 CPUs are free
    assert workers.min_count == workers.max_count and workers.num_gpus == 0  # a fixed CPU pool
    assert size_workers(_args(num_cpus_per_worker=1.0), n_shards=2, nodes=nodes, on_gpu=False).count == 2


def test_gpu_pools_autoscale_between_min_and_max_whatever_gpus_are_up():
    gpu_nodes = [{"CPU": 8.0, "GPU": 4.0, "memory": 64.0 * GB}]
    for nodes in (gpu_nodes, [{"CPU": 2.0, "memory": 8.0 * GB}]):  # GPUs up, or none yet (autoscaler at zero)
        pool = size_workers(_args(), 100, nodes, on_gpu=True)
        assert (pool.min_count, pool.max_count, pool.num_gpus) == (1, 100, 1.0)  # up to one per micro-batch
        assert pool.actor_options() == {"num_cpus": 1.0, "num_gpus": 1.0}  # no Ray memory: types may omit it
    pool = size_workers(_args(min_workers=2, max_workers=8), 5, gpu_nodes, on_gpu=True)
    assert (pool.min_count, pool.max_count) == (2, 5)  # never more actors than micro-batches
    assert (size_workers(_args(num_workers=3), 100, [], on_gpu=True).min_count, 3) == (3, 3)
    custom = size_workers(_args(accelerator_resource="fake_gpu", num_gpus_per_worker=0.5), 4, [], on_gpu=True)
    assert custom.actor_options()["resources"] == {"fake_gpu": 0.5} and "num_gpus" not in custom.actor_options()
    assert custom.bundle() == {"CPU": 1.0, "fake_gpu": 0.5}
    with pytest.raises(ValueError, match="min_workers 3 > max_workers 2"):
        _args(min_workers=3, max_workers=2)
    with pytest.raises(ValueError, match="either num_workers"):
        _args(num_workers=2, max_workers=4)


def test_a_micro_batch_that_fits_no_node_is_refused_with_the_numbers():
    nodes = [{"CPU": 4.0, "memory": 8.0 * GB}, {"CPU": 4.0, "memory": 16.0 * GB}]
    needed = actor_memory_bytes(256, 512, on_gpu=False)
    with pytest.raises(BergRayError, match=rf"needs {needed / GB:.2f} GB.*256 x 512 frames.*largest Ray node offers "
                                           rf"16.00 GB.*--batch-size or --chunk-frames"):
        size_workers(_args(batch_size=256, chunk_frames=512), 10, nodes, on_gpu=False)
