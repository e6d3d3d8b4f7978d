"""Pre-flight of commands that run a sweep (issue 18, "Late failures"): options and scans are refused with plain
one-line messages naming the flag, before the cost is printed, stimuli are generated, Ray starts or anything is
written; validation errors of every config are worded by berg_ray, never by pydantic."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from pydantic import ValidationError

from berg_ray.cli import main
from berg_ray.config import ServeArgs, SweepArgs
from berg_ray.errors import validation_summary

PYDANTIC_WORDING = ("Input should", "validation error", "literal[", "list[str]", "Value error", "Extra inputs",
                    "Field required", "String should")


def _summary(model, flags=False, **values) -> str:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(values)
    return validation_summary(caught.value, flags=flags)


@pytest.mark.parametrize(("values", "expected"), [
    ({"sessions": 5}, "sessions must be a list or 'all', got 5"),
    ({"sessions": [1]}, "sessions must be a list of strings or 'all'"),
    ({"batch_size": 0}, "batch_size must be >= 1, got 0"),
    ({"batch_size": "a"}, "batch_size must be an integer, got 'a'"),
    ({"reduce": "max"}, "reduce must be 'none' or 'mean', got 'max'"),
    ({"resize": "maybe"}, "resize must be true or false, got 'maybe'"),
    ({"metrics_export_port": 70000}, "metrics_export_port must be <= 65535, got 70000"),
    ({"frobnicate": 1}, "frobnicate is not an option here"),
    ({"num_workers": 2, "min_workers": 1}, "give either num_workers"),
])
def test_validation_messages_are_plain_and_name_the_option(values, expected):
    """Before: 'sessions.list[str]: Input should be a valid list; sessions.literal['all']: Input should be 'all''."""
    message = _summary(SweepArgs, berg_dir="b", input="i", output="o", **values)
    assert expected in message, message
    assert not any(words in message for words in PYDANTIC_WORDING), message


def test_validation_messages_use_flags_from_the_command_line():
    message = _summary(SweepArgs, flags=True, berg_dir="b", input="i", batch_size=0)
    assert message == "--output is required; --batch-size must be >= 1, got 0", message


def test_nested_config_options_keep_their_path():
    message = _summary(ServeArgs, berg_dir="b", core={"max_batch": 4})
    assert message == "core.max_batch is not an option here (check its spelling)", message


@pytest.mark.slow  # runs a whole Python process (scripts/test.sh --quick leaves it out)
@pytest.mark.parametrize(("argv", "words"), [
    (["tuning", "--sessions", "session-8-scan-5"], "--sessions names 'session-8-scan-5', not a scan in"),
    (["tuning", "--sessions", "session-5_scan-6"], "--sessions names 'session-5_scan-6', not a scan in"),
    (["rf", "--burn-in-frames", "-1"], "--burn-in-frames must be >= 0, got -1"),
    (["domains", "--num-workers", "2", "--min-workers", "1"], "give either num_workers"),
])
def test_experiment_options_are_refused_before_anything_runs(tmp_path, fixture_berg_dir, argv, words):
    """Before: the cost was printed, 102 MB of stimuli written, then a pydantic message after the sweep began."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "berg_ray.cli", "experiment", *argv, "--berg-dir",
                           str(fixture_berg_dir), "--out", str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("error: ") and words in done.stderr, done.stderr[-2000:]
    assert len(done.stderr.strip().splitlines()) == 1 and done.stdout == "", (done.stdout, done.stderr)
    assert not any(w in done.stderr for w in PYDANTIC_WORDING), done.stderr
    if "--sessions" in argv:  # the scans the release holds, not the 13 of the paper
        assert "scans in this release: session-4_scan-7, session-8_scan-5 " in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()
    assert time.monotonic() - started < 60  # seconds, not a sweep


def test_sweep_lists_the_scans_of_the_release_for_a_malformed_one(tmp_path, fixture_berg_dir, capsys):
    (tmp_path / "in").mkdir()
    code = main(["sweep", "--berg-dir", str(fixture_berg_dir), "--input", str(tmp_path / "in"), "--out",
                 str(tmp_path / "out"), "--sessions", "session-8-scan-5"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --sessions names 'session-8-scan-5'"), err
    assert "session-4_scan-7, session-8_scan-5 " in err and "Value error" not in err, err
    assert not (tmp_path / "out").exists()
