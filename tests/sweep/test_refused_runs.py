"""A refused sweep leaves nothing behind (issue 18): no output directory, lock file or staging area it created."""

from __future__ import annotations

import subprocess
import sys

import pytest

from berg_ray.storage import LOCK_FILE, TMP_DIR, open_store


@pytest.mark.slow  # runs a whole Python process (scripts/test.sh --quick leaves it out)
def test_empty_input_is_refused_before_the_output_is_touched(tmp_path, fixture_berg_dir):
    (tmp_path / "empty").mkdir()
    done = subprocess.run([sys.executable, "-m", "berg_ray.cli", "sweep", "--berg-dir", str(fixture_berg_dir),
                           "--input", str(tmp_path / "empty"), "--out", str(tmp_path / "out"),
                           "--device", "cpu"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("error: no input videos under"), done.stderr[-2000:]
    assert not (tmp_path / "out").exists()


def test_the_writability_probe_removes_what_it_created(tmp_path):
    store = open_store(str(tmp_path / "new" / "out"))
    store.check_writable()
    assert not (tmp_path / "new").exists()
    (tmp_path / "kept").mkdir()
    open_store(str(tmp_path / "kept")).check_writable()
    assert (tmp_path / "kept").is_dir() and not list((tmp_path / "kept").iterdir())  # the user's own dir stays


def test_remove_if_unused_only_removes_bookkeeping(tmp_path):
    root = tmp_path / "out"
    (root / TMP_DIR).mkdir(parents=True)
    (root / LOCK_FILE).touch()
    (root / "rows.parquet").write_bytes(b"data")
    store = open_store(str(root))
    assert not store.remove_if_unused() and (root / "rows.parquet").exists()
    (root / "rows.parquet").unlink()
    (root / TMP_DIR / "part").write_bytes(b"staged")
    assert not store.remove_if_unused()  # a staged file may be another run's
    (root / TMP_DIR / "part").unlink()
    assert store.remove_if_unused() and not root.exists()
    assert store.root_exists() is False
