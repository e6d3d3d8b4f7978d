"""What a person reads and gets from `berg-ray`: help with every default, the same serve config in every directory,
files with the umask's modes, a demo release that never mixes old and new files."""

from __future__ import annotations

import argparse
import os
import re
import stat
from pathlib import Path

import numpy as np
import pytest

from berg_ray import BERG
from berg_ray.cli import build_parser, main
from berg_ray.cli.options import cluster_device, local_device, one_scan
from berg_ray.config import MODEL_ID, ServeArgs
from berg_ray.errors import BergRayError
from berg_ray.storage.publish import publish_directory
from berg_ray.serve.cli import read_config, serve_args_from

REPO_ROOT = Path(__file__).resolve().parents[1]


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices)


def _help_entries(text: str) -> dict[str, str]:
    """Option string -> its help text, parsed from a --help screen."""
    entries: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        match = re.match(r"^  (-[-\w]+)", line)
        if match:
            current = match.group(1)
            entries[current] = line
        elif current and line.startswith("    "):
            entries[current] += " " + line.strip()
        else:
            current = None
    return {option: " ".join(entry.split()) for option, entry in entries.items()}


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_help_shows_every_default(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    entries = _help_entries(capsys.readouterr().out)
    for action in _subcommands()[command]._actions:
        if not action.option_strings or action.required or isinstance(action, argparse._HelpAction):
            continue
        entry = entries[action.option_strings[0]]
        assert action.help, f"{command} {action.option_strings[0]} has no help"
        if action.default is None or action.default is False:  # the help says what happens without the option
            assert isinstance(action, argparse._StoreTrueAction) or "default" in entry, entry
        else:
            assert f"(default: {action.default})" in entry, entry


def test_serve_without_config_uses_the_builtin_defaults_in_every_directory(tmp_path, monkeypatch):
    defaults = ServeArgs(berg_dir="b")
    for directory in (REPO_ROOT, tmp_path):  # the repository root holds deployments/local-cpu.yaml
        monkeypatch.chdir(directory)
        assert serve_args_from(read_config(None), "b", None, None) == defaults
    local = serve_args_from(read_config(str(REPO_ROOT / "deployments" / "local-cpu.yaml")), "b", None, None)
    assert local.device == "cpu" and local.berg_dir == "b"


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_encode_output_has_the_mode_the_umask_gives(demo_berg_dir, tmp_path, umask, mode):
    np.save(tmp_path / "video.npy", np.zeros((2, 144, 256), np.uint8))
    previous = os.umask(umask)
    try:
        code = main(["encode", "--berg-dir", str(demo_berg_dir), "--session", "session-8_scan-5", "--input",
                     str(tmp_path / "video.npy"), "--out", str(tmp_path / "r.npy"), "--device", "cpu"])
    finally:
        os.umask(previous)
    assert code == 0
    assert stat.S_IMODE((tmp_path / "r.npy").stat().st_mode) == mode


def test_demo_release_refuses_a_non_empty_folder_unless_forced(tmp_path, capsys):
    out = tmp_path / "rel"
    out.mkdir()
    (out / "stale.txt").write_text("from before")
    argv = ["demo-release", "--out", str(out), "--sessions", "session-9_scan-6", "--units", "5"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--force" in err and len(err.strip().splitlines()) == 1
    assert [p.name for p in out.iterdir()] == ["stale.txt"]  # untouched

    assert main([*argv, "--force"]) == 0
    assert not (out / "stale.txt").exists()
    assert BERG(out).get_encoding_model(MODEL_ID, train_session="session-9_scan-6", device="cpu").n_units == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rel"]  # no temp directory left beside it
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~_umask()


def test_a_failed_build_leaves_the_published_folder_as_it_was(tmp_path):
    target = tmp_path / "release"
    publish_directory(target, lambda d: (d / "a.txt").write_text("v1"))

    def failing(directory: Path) -> None:
        (directory / "a.txt").write_text("v2")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        publish_directory(target, failing, force=True)
    assert [(p.name, p.read_text()) for p in target.iterdir()] == [("a.txt", "v1")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release"]
    with pytest.raises(BergRayError, match="not empty"):
        publish_directory(target, lambda d: None)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_sweep_with_nothing_left_to_do_says_so_instead_of_a_rate():
    from berg_ray.sweep.runner import SweepResult

    done = SweepResult("out/", ["session-8_scan-5"], stimuli=3, stimuli_done_before=3, wall_s=0.4)
    assert done.complete_before and "output already complete" in done.summary()
    assert "frames/s" not in done.summary()
    work = SweepResult("out/", ["session-8_scan-5"], stimuli=3, stimuli_done_before=1, files_written=1,
                       frame_scans=60, wall_s=2.0)
    assert not work.complete_before and "30.00 frames/s" in work.summary()


TEXT_TYPES = (local_device, cluster_device, one_scan)  # argparse types of text flags: checked, not numbers


def _every_numeric_flag(parser: argparse.ArgumentParser):
    """(parser, flag, type) of every option of ``parser`` and its subcommands (nested) whose type is a number."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _every_numeric_flag(sub)
        elif action.option_strings and action.type is not None and action.type not in (str, Path, *TEXT_TYPES):
            yield parser.prog, action.option_strings[0], action.type


def test_numeric_flags_take_ascii_digits_only():
    """int('٨') is 8 and int() of 5,000 digits raises ValueError (issue 16, finding 5): every numeric flag of every
    subcommand refuses both, naming the flag, and still takes ASCII numbers."""
    parser = build_parser()
    flags = list(_every_numeric_flag(parser))
    assert len(flags) >= 20
    for _, flag, kind in flags:
        for bad in ("\u0668", "\uff18", "8" * 5_000, "nan"):
            with pytest.raises(argparse.ArgumentTypeError, match="ASCII digits"):
                kind(bad)
        assert kind("8") == 8 and kind(" 12 ") == 12
    from berg_ray.validation.numbers import float_flag

    assert float_flag("0.5") == 0.5 and float_flag("1e-3") == 0.001 and float_flag("-2") == -2.0


@pytest.mark.parametrize("argv", [["demo-release", "--out", "x", "--units", "\u0668"],
                                  ["demo-release", "--out", "x", "--units", "8" * 5_000]])
def test_numbers_inside_string_flags_take_ascii_digits_only(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err[-500:]


def test_metrics_port_and_grid_take_ascii_digits_only():
    from berg_ray.experiments.cli import _grid
    from berg_ray.cluster.session import metrics_port_from

    assert _grid("6x10") == (6, 10)
    for bad in ("\u0666x10", f"{'6' * 5_000}x10"):
        with pytest.raises(BergRayError, match="--grid"):
            _grid(bad)

    assert metrics_port_from("8080") == 8080
    for bad in ("\u0668\u0660\u0668\u0660", "8" * 5_000, "\u00b2"):
        with pytest.raises(BergRayError, match="port number"):
            metrics_port_from(bad)
