"""Hostile input names and links (issue 16, finding 3): a file name that is not valid UTF-8 is that input's error,
symbolic links leaving --input are refused unless follow_symlinks, dangling links are listed, and control
characters never reach printed output raw (no Ray needed)."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from berg_ray.errors import StorageError
from berg_ray.storage import open_store
from berg_ray.sweep import layout
from berg_ray.sweep.pipeline import decode_input, decode_shards, input_error
from berg_ray.sweep.plan import list_stimuli, plan_shards
from berg_ray.sweep.runner import SweepResult
from tests.sweep.helpers import npy_bytes

SCAN = "session-8_scan-5"
LATIN1 = os.fsdecode(b"caf\xe9")  # 'caf\udce9': how Python names the file b'caf\xe9.npy'


@pytest.fixture
def clip(fixture_stimuli) -> np.ndarray:
    return fixture_stimuli[0, :4]


def _errors_by_id(listing) -> dict[str, dict]:
    return {e["stimulus_id"]: e for e in listing.errors}


def test_a_name_that_is_not_utf8_is_that_inputs_error(clip, tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    (source / "good.npy").write_bytes(npy_bytes(clip))
    with open(os.path.join(os.fsencode(source), b"caf\xe9.npy"), "wb") as handle:
        handle.write(npy_bytes(clip))
    store = open_store(str(source))
    listing = list_stimuli(store)
    assert [s.stimulus_id for s in listing.stimuli] == ["good"]
    error = _errors_by_id(listing)["caf\\xe9"]  # the undecodable byte, escaped readably
    assert error["error_type"] == "InputNameError" and error["input"].endswith("/caf\\xe9.npy")
    assert "not valid UTF-8" in error["error"] and "rename" in error["error"]
    out = open_store(str(tmp_path / "out"))  # the errors table is writable (it raised UnicodeEncodeError)
    layout.write_table(out, layout.ERRORS_FILE, layout.errors_table(listing.errors), layout.ERRORS_SCHEMA)
    assert pq.read_table(tmp_path / "out" / layout.ERRORS_FILE).column("stimulus_id").to_pylist() == ["caf\\xe9"]
    shards = plan_shards(listing.stimuli, [SCAN], {}, batch_size=8)
    assert [s.stimulus_id for s in shards[0].stimuli] == ["good"]  # the valid file of its micro-batch is kept


def test_links_leaving_the_input_are_refused_unless_followed(clip, tmp_path):
    source, outside = tmp_path / "in", tmp_path / "elsewhere"
    (source / "sub").mkdir(parents=True)
    outside.mkdir()
    (source / "real.npy").write_bytes(npy_bytes(clip))
    (outside / "secret.npy").write_bytes(npy_bytes(clip[:2]))
    (source / "alias.npy").symlink_to(source / "real.npy")  # inside: an input like any other
    (source / "out_file.npy").symlink_to(outside / "secret.npy")
    (source / "out_dir").symlink_to(outside, target_is_directory=True)
    (source / "sub" / "up").symlink_to(source, target_is_directory=True)  # a loop back inside: not followed
    (source / "gone.npy").symlink_to(tmp_path / "missing.npy")
    (source / "_hidden.npy").symlink_to(tmp_path / "missing.npy")  # ignored names stay ignored
    listing = list_stimuli(open_store(str(source)))
    assert [s.stimulus_id for s in listing.stimuli] == ["alias", "real"]
    errors = _errors_by_id(listing)
    assert sorted(errors) == ["gone", "out_dir", "out_file"]
    assert all(e["error_type"] == "InputLinkError" for e in errors.values())
    assert "dangling" in errors["gone"]["error"]
    for key in ("out_dir", "out_file"):
        assert "outside" in errors[key]["error"] and "--follow-symlinks" in errors[key]["error"]
    followed = list_stimuli(open_store(str(source), follow_symlinks=True))
    assert [s.stimulus_id for s in followed.stimuli] == ["alias", "out_dir/secret", "out_file", "real"]
    assert sorted(_errors_by_id(followed)) == ["gone"]


def test_a_link_swapped_after_listing_is_not_read(clip, tmp_path):
    source, outside = tmp_path / "in", tmp_path / "elsewhere"
    source.mkdir()
    outside.mkdir()
    (source / "a.npy").write_bytes(npy_bytes(clip))
    (outside / "secret.npy").write_bytes(npy_bytes(clip))
    store = open_store(str(source))
    assert [s.stimulus_id for s in list_stimuli(store).stimuli] == ["a"]
    (source / "a.npy").unlink()
    (source / "a.npy").symlink_to(outside / "secret.npy")
    with pytest.raises(StorageError, match="outside"):
        decode_input(store, "a.npy", resize=False, skip_frames=0, max_frames=100)
    assert decode_input(open_store(str(source), follow_symlinks=True), "a.npy", False, 0, 100).shape[0] == 4


def test_control_characters_are_escaped_wherever_names_are_printed(clip, tmp_path):
    forged = "x\n    y: forged line\r\x1b[2J"
    (tmp_path / f"{forged}.npy").write_bytes(b"not numpy")
    (tmp_path / "ok.npy").write_bytes(npy_bytes(clip))
    store = open_store(str(tmp_path))
    shard = plan_shards(list_stimuli(store).stimuli, [SCAN], {}, batch_size=8)[0]
    out = decode_shards({"shard": np.array([shard.to_json()], dtype=object)}, store, resize=False, skip_frames=0,
                        max_frames=100)
    errors = json.loads(out["errors"][0])
    assert len(errors) == 1 and errors[0]["stimulus_id"] == forged  # the data keeps the exact name
    assert "\n" not in errors[0]["error"] and "\r" not in errors[0]["error"] and "\x1b" not in errors[0]["error"]
    assert "x\\n    y: forged line\\r\\x1b[2J" in errors[0]["error"]
    result = SweepResult(f"{tmp_path}/\nout", [SCAN], errors=errors + [input_error(store, "a\u2028b", "a\u2028b.npy",
                                                                                   OSError("z\nz"))])
    lines = result.summary().splitlines()
    assert len(lines) == 7 and lines[0].endswith("/\\nout")
    assert lines[-2].startswith("    x\\n    y: forged line") and lines[-1].startswith("    a\\u2028b: ")
    assert all(c.isprintable() for line in lines for c in line)


def test_the_cli_error_line_escapes_names_and_follow_symlinks_is_an_option(tmp_path, capsys):
    from berg_ray.cli import build_parser, main
    from berg_ray.sweep.cli import sweep_args_from_cli

    missing = tmp_path / "no\nsuch: forged"
    code = main(["sweep", "--berg-dir", str(missing), "--input", str(tmp_path), "--out", str(tmp_path / "o")])
    lines = capsys.readouterr().err.splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "no\\nsuch: forged" in lines[0]

    ns = build_parser().parse_args(["sweep", "--berg-dir", "b", "--input", "i", "--out", "o", "--follow-symlinks"])
    assert sweep_args_from_cli(ns).follow_symlinks is True
    ns = build_parser().parse_args(["sweep", "--berg-dir", "b", "--input", "i", "--out", "o"])
    assert sweep_args_from_cli(ns).follow_symlinks is False
