"""Every ```bash and ```python block of README.md runs as written, top to bottom, against the Quick-start state.

The session (tests/readme_blocks.py) is a fresh terminal in a copy of the repository root (its entries linked
into a temporary directory, plus ``.venv`` linked to this interpreter's environment) after the Quick start:
``demo-output/berg`` holds the demo's generated release, written by the same function ``berg-ray demo`` uses.
The venv's ``bin`` is taken off PATH, so ``berg-ray`` and ``python`` work only after the README's activation step.
Services (``berg-ray serve``) run for real on 127.0.0.1; sweeps start their own local Ray clusters.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from berg_ray.demo import write_demo_berg_dir
from berg_ray.serve.cli import free_port
from tests.readme_blocks import SKIP_CATEGORIES, ShellSession, parse_readme

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parents[1]
README = REPO_ROOT / "README.md"
BLOCKS = parse_readme(README.read_text())
RUNNABLE = [b for b in BLOCKS if b.runnable]
NOT_LINKED = {".git", ".venv", "demo-output", ".bench", ".pytest_cache", "__pycache__"}


def _fresh_terminal_env() -> dict[str, str]:
    """This process's environment as a new terminal has it: no active venv, no Ray cluster address."""
    env = dict(os.environ)
    venv_bin = str(Path(sys.prefix) / "bin")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and Path(p).resolve() != Path(venv_bin).resolve())
    for name in ("VIRTUAL_ENV", "RAY_ADDRESS", "RAY_AUTH_MODE", "BERG_RAY_TOKEN", "PYTEST_CURRENT_TEST"):
        env.pop(name, None)
    return env


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """The terminal: a repository root (linked) after the Quick start, with the venv at ``.venv``."""
    assert (Path(sys.prefix) / "bin" / "activate").is_file(), (
        f"the README test needs a venv (the Quick start's .venv); {sys.prefix} has no bin/activate")
    root = tmp_path_factory.mktemp("readme")
    for entry in REPO_ROOT.iterdir():
        if entry.name not in NOT_LINKED:
            (root / entry.name).symlink_to(entry)
    (root / ".venv").symlink_to(Path(sys.prefix))
    write_demo_berg_dir(root / "demo-output")
    shell = ShellSession(root, _fresh_terminal_env(), free_port(), tmp_path_factory.mktemp("readme_scratch"))
    yield shell
    shell.stop_services()


def _run_through(shell: ShellSession, index: int):
    """Run every runnable block up to ``index`` (in README order) that has not run yet; the outcome of ``index``."""
    for block in RUNNABLE[:index + 1]:
        if block.line not in shell.outcomes:
            shell.outcomes[block.line] = shell.run(block)
    return shell.outcomes[RUNNABLE[index].line]


@pytest.mark.parametrize("index", range(len(RUNNABLE)), ids=[b.name for b in RUNNABLE])
def test_block_runs_as_written(session, index):
    block = RUNNABLE[index]
    outcome = _run_through(session, index)
    assert outcome.returncode == 0, (f"{block.name} (section {block.section!r}) failed with status "
                                     f"{outcome.returncode} after {outcome.seconds:.1f} s:\n{block.code}\n"
                                     f"--- output ---\n{outcome.output[-6000:]}")
    assert "Traceback (most recent call last)" not in outcome.output, outcome.output[-6000:]


def test_services_stop_cleanly(session):
    """Every service the README starts stops on SIGTERM (its Ctrl-C) with status 0 and says so."""
    _run_through(session, len(RUNNABLE) - 1)
    session.stop_services()
    assert session.services, "the README starts no service, so its HTTP and handle examples were not run"
    for service in session.services:
        assert service.stopped.returncode == 0 and "berg-ray service stopped" in service.stopped.output, (
            service.stopped.output[-4000:])


def test_readme_structure():
    """Blocks to run exist; skips are explained and of an allowed kind, and no section is skipped whole; the Quick
    start is two commands."""
    assert {b.language for b in RUNNABLE} == {"bash", "python"}
    skipped = [b for b in BLOCKS if b.directive == "skip"]
    for block in skipped:
        category, _, why = block.note.partition(":")
        assert category in SKIP_CATEGORIES and why.strip(), (
            f"{block.name}: a skip needs 'CATEGORY: reason' with CATEGORY in {SKIP_CATEGORIES}, got {block.note!r}")
    for section in {b.section for b in skipped} - {b.section for b in RUNNABLE}:  # sections not run at all
        kinds = {b.note.partition(":")[0] for b in skipped if b.section == section}
        assert kinds <= {"download", "gpu"}, f"section {section!r} has no block this test runs"
    quick_start = [b for b in BLOCKS if b.section == "Quick start" and b.language == "bash"]
    assert quick_start[0].directive == "skip" and quick_start[0].note.startswith("quick-start")
    commands = [line for line in quick_start[0].code.splitlines() if line.strip()]
    assert commands == ["bash scripts/demo.sh", "bash scripts/test.sh"]
    assert all(b.language in ("bash", "python", "") for b in BLOCKS), "unknown code block language"
