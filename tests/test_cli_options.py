"""One command line (issue 18, "Flags differ from command to command"): every parser of ``berg-ray``, nested
subcommands included, takes each shared option from berg_ray.cli.options with the same help and metavar, refuses
abbreviations, prints argparse's errors as one ``error:`` line with exit status 2 and shows every default in its
help; old option names still work for a release, with a note."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from berg_ray.cli import options as cli_options
from berg_ray.cli import build_parser, main
from berg_ray.cli.parser import BergRayParser, DefaultsHelpFormatter
from tests.test_cli_ux import _help_entries

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the test extra installs tomli
    import tomli as tomllib

REPO_ROOT = Path(__file__).resolve().parents[1]
RELEASE = {"--berg-dir", "--s3-endpoint-url"}
DEVICE = {"--device", "--precision"}
CLUSTER = {"--address", "--metrics-export-port"}
POOL = {"--num-workers", "--min-workers", "--max-workers", "--resource-wait-s", "--num-gpus-per-worker",
        "--accelerator-resource", "--num-cpus-per-worker"}
EXPERIMENT = RELEASE | DEVICE | CLUSTER | POOL | {"--sessions", "--out", "--quiet", "--verbose"}
# The shared options each command must have (it may have more of its own).
EXPECTED = {
    "berg-ray encode": RELEASE | DEVICE | {"--anonymous", "--sessions", "--out", "--quiet"},
    "berg-ray demo-release": {"--out", "--sessions"},
    "berg-ray demo": {"--out", "--verbose"},
    "berg-ray serve": RELEASE | DEVICE | CLUSTER | {"--sessions", "--verbose"},
    "berg-ray sweep": EXPERIMENT | {"--anonymous", "--resize"},
    "berg-ray download": {"--out", "--sessions", "--s3-endpoint-url", "--quiet"},
    "berg-ray experiment tuning": EXPERIMENT,
    "berg-ray experiment rf": EXPERIMENT,
    "berg-ray experiment domains": EXPERIMENT,
    "berg-ray experiment mei": EXPERIMENT,
    "berg-ray experiment properties": EXPERIMENT,
    "berg-ray evaluate": RELEASE | DEVICE | {"--anonymous", "--sessions", "--out", "--address", "--num-gpus-per-worker",
                                            "--quiet", "--verbose"},
    "berg-ray plot responses": {"--s3-endpoint-url", "--anonymous", "--sessions", "--out"},
}
# The argument group (concern) of each shared option; --sessions sits with each command's own options.
GROUPS = {**dict.fromkeys(RELEASE | {"--anonymous"}, "release and S3 access"), **dict.fromkeys(DEVICE, "device and "
          "precision"), **dict.fromkeys(CLUSTER | POOL, "Ray cluster"), "--out": "output", "--quiet": "verbosity",
          "--verbose": "verbosity", "--resize": "video input"}
S3_ONLY = "S3 access"  # the group of the S3 options of a command without --berg-dir (download, plot)
SAME_EVERYWHERE = set(GROUPS) - {"--out"}  # --out's help says what each command writes there


def _parsers(parser: argparse.ArgumentParser):
    """(prog, parser) of ``parser`` and of every subcommand below it, nested ones included."""
    yield parser.prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {action.option_strings[0]: action for action in parser._actions if action.option_strings}


def _group_of(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    return next(group.title for group in parser._action_groups if action in group._group_actions)


def test_every_parser_shares_the_options_of_its_concerns():
    parsers = dict(_parsers(build_parser()))
    leaves = {prog for prog, p in parsers.items() if not any(isinstance(a, argparse._SubParsersAction)
                                                              for a in p._actions)}
    assert leaves == set(EXPECTED), "a subcommand was added or removed: list its shared options in EXPECTED"
    seen: dict[str, tuple[str, str | None, str]] = {}
    for prog, options in EXPECTED.items():
        parser = parsers[prog]
        actions = _options(parser)
        assert options <= set(actions), f"{prog} lacks {sorted(options - set(actions))}"
        for name, action in actions.items():  # every option named like a shared one is the shared one
            if name in GROUPS:
                wanted = S3_ONLY if name != "--berg-dir" and GROUPS[name] == GROUPS["--berg-dir"] and \
                    "--berg-dir" not in actions else GROUPS[name]
                assert _group_of(parser, action) == wanted, f"{prog} {name} is not in group {wanted}"
            if name in SAME_EVERYWHERE:
                found = (action.help, action.metavar, type(action).__name__)
                assert seen.setdefault(name, found) == found, f"{prog} {name} differs: {found} vs {seen[name]}"
    assert seen["--device"][0] == cli_options.DEVICE_HELP and seen["--berg-dir"][1] == "DIR"


def test_sessions_and_out_have_one_name_everywhere():
    for prog, parser in _parsers(build_parser()):
        actions = _options(parser)
        if "--sessions" in actions:
            sessions = actions["--sessions"]
            one = sessions.option_strings == ["--sessions", "--session"]
            assert (sessions.help, sessions.metavar) == ((cli_options.ONE_SESSION_HELP, "SCAN") if one else
                                                         (cli_options.SESSIONS_HELP, "SCANS")), prog
        assert "--session" not in actions and "--output" not in actions and "--to" not in actions, prog
        if "--out" in actions:
            assert actions["--out"].dest == "out" and actions["--out"].metavar in ("DIR", "FILE", "PNG"), prog


def test_every_parser_refuses_abbreviations_and_shows_defaults():
    """Nested subcommands included: `experiment tuning --help` showed no defaults before."""
    for prog, parser in _parsers(build_parser()):
        assert isinstance(parser, BergRayParser) and parser.allow_abbrev is False, prog
        assert parser.formatter_class is DefaultsHelpFormatter, prog
        entries = _help_entries(parser.format_help())
        for action in parser._actions:
            if not action.option_strings or action.required or isinstance(action, (argparse._HelpAction,
                                                                                    argparse._VersionAction)):
                continue
            entry = entries[action.option_strings[0]]
            if action.default is None or action.default is False:
                assert isinstance(action, argparse._StoreTrueAction) or "default" in entry, f"{prog}: {entry}"
            else:
                assert f"(default: {action.default})" in entry, f"{prog}: {entry}"


def test_nested_help_through_main_shows_defaults(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["experiment", "tuning", "--help"])
    assert exit_info.value.code == 0
    entries = _help_entries(capsys.readouterr().out)
    assert "(default: 16)" in entries["--directions"] and "(default: float32)" in entries["--precision"]


@pytest.mark.slow  # runs a whole Python process (scripts/test.sh --quick leaves it out)
def test_version_is_the_package_version():
    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    done = subprocess.run([sys.executable, "-m", "berg_ray.cli", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == f"berg-ray {version}", done


@pytest.mark.parametrize("argv, message", [
    ([], "the following arguments are required: COMMAND (see berg-ray --help)"),
    (["nope"], "invalid choice: 'nope'"),
    (["sweep", "--input", "i", "--out", "o"], "required: --berg-dir (see berg-ray sweep --help)"),
    (["experiment", "tuning", "--berg-dir", "b", "--out", "o", "--directions", "x"],
     "argument --directions: 'x' is not a whole number"),
    (["experiment", "rf", "--berg-dir", "b", "--out", "o", "--device", "cuda:1"], "names one GPU of this machine"),
    (["encode", "--berg-dir", "b", "--sessions", "a", "--input", "i", "--out", "o", "--device", "tpu"],
     "'tpu' is not a device"),
    (["evaluate", "--berg-dir", "b", "--sessions", "session-8_scan-5,session-4_scan-7", "--recordings", "r",
      "--out", "o"], "is not one scan"),
    (["plot", "responses", "--input", "i", "--stimulus", "s"], "required: --sessions/--session"),
    (["download", "--out", "d", "--md5x", "0"], "unrecognized arguments: --md5x 0; did you mean --md5?"),
    (["sweep", "--berg-dir", "b", "--input", "i", "--out", "o", "--session", "session-8_scan-5"],
     "unrecognized arguments: --session session-8_scan-5; did you mean --sessions? (see berg-ray sweep --help)"),
    (["encode", "--berg", "b", "--sessions", "a", "--input", "i", "--out", "o"], "required: --berg-dir"),
])
def test_argparse_errors_are_one_line_with_exit_2(argv, message, capsys):
    """No usage block and no `berg-ray: error:` prefix; `sweep --session X` is no longer a prefix of --sessions."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], captured.err
    assert "usage:" not in captured.err and "berg-ray: error" not in captured.err and captured.out == ""


@pytest.mark.parametrize("argv, old, dest", [
    (["sweep", "--berg-dir", "b", "--input", "i", "--output", "o"], "--output", "out"),
    (["encode", "--berg-dir", "b", "--sessions", "a", "--input", "i", "--output", "o"], "--output", "out"),
    (["download", "--to", "o"], "--to", "out"),
    (["demo", "--work-dir", "o"], "--work-dir", "out"),
])
def test_deprecated_output_names_still_work_with_a_note(argv, old, dest, capsys):
    ns = build_parser().parse_args(argv)
    assert str(getattr(ns, dest)) == "o"
    err = capsys.readouterr().err
    assert err == f"note: {old} is deprecated and will be removed in a later release; use --out\n"
    assert old not in dict(_parsers(build_parser()))[f"berg-ray {argv[0]}"].format_help()  # not advertised


def test_session_is_the_same_option_as_sessions_without_a_note(capsys):
    for name in ("--session", "--sessions"):
        ns = build_parser().parse_args(["plot", "responses", "--input", "i", "--stimulus", "s", name, "x"])
        assert ns.session == "x"
    assert capsys.readouterr().err == ""


def test_encode_with_the_old_names_writes_its_output_and_notes_each(demo_berg_dir, tmp_path, capsys):
    np.save(tmp_path / "video.npy", np.zeros((2, 144, 256), np.uint8))
    argv = ["encode", "--berg-dir", str(demo_berg_dir), "--session", "session-8_scan-5", "--input",
            str(tmp_path / "video.npy"), "--device", "cpu"]
    assert main([*argv, "--output", str(tmp_path / "old.npy"), "--progress"]) == 0
    err = capsys.readouterr().err
    assert "encode session-8_scan-5: 100%" in err  # --progress still shows the bar, here where stderr is no terminal
    notes = [line for line in err.splitlines() if line.startswith("note: ")]
    assert notes == ["note: --output is deprecated and will be removed in a later release; use --out",
                     "note: --progress is deprecated and will be removed in a later release; a progress bar is "
                     "shown on a terminal unless --quiet"]
    assert main([*argv, "--out", str(tmp_path / "new.npy"), "--quiet"]) == 0
    assert capsys.readouterr().err == ""  # --quiet: no progress bar; no note
    np.testing.assert_array_equal(np.load(tmp_path / "old.npy"), np.load(tmp_path / "new.npy"))


def test_experiment_passes_device_precision_and_verbose_to_its_sweep():
    from berg_ray.config import SweepArgs
    from berg_ray.experiments.cli import _sweep_options

    ns = build_parser().parse_args(["experiment", "domains", "--berg-dir", "b", "--out", "o", "--device", "cpu",
                                    "--precision", "bfloat16", "--verbose", "--num-workers", "2"])
    options = _sweep_options(ns)
    assert options["device"] == "cpu" and options["precision"] == "bfloat16" and options["verbose"] is True
    SweepArgs(berg_dir="b", input="i", output="o", **options)  # every key is a SweepArgs field


def test_commands_in_the_docs_use_no_deprecated_name(capsys):
    from tests.doc_blocks import doc_pages
    from tests.test_cluster_configs import berg_ray_commands, cluster_commands, readme_shell_lines

    commands = [argv for _, argv in cluster_commands()]
    for page in doc_pages(REPO_ROOT):  # the README and every page of the docs
        for line in readme_shell_lines((REPO_ROOT / page).read_text()):
            commands += berg_ray_commands(line)
    commands = [argv for argv in commands if argv and argv[0] not in ("--help", "--version")]
    assert len(commands) >= 15
    for argv in commands:
        build_parser().parse_args(argv)
        assert capsys.readouterr().err == "", f"berg-ray {' '.join(argv)}"
