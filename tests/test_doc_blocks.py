"""Every ```bash and ```python block of README.md and of the documentation pages runs as written, page after page in
the order of the site's navigation (tests/doc_blocks.py: doc_pages), against the Quick-start state.

The session (tests/doc_blocks.py) is a fresh terminal in a copy of the repository root (its entries linked
into a temporary directory, plus ``.venv`` linked to this interpreter's environment) after the Quick start:
``demo-output/berg`` holds the demo's generated release, written by the same function ``berg-ray demo`` uses.
The venv's ``bin`` is taken off PATH, so ``berg-ray`` and ``python`` work only after the activation step.
Services (``berg-ray serve``) run for real on 127.0.0.1; sweeps start their own local Ray clusters.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from berg_ray.demo import write_demo_berg_dir
from berg_ray.serve.cli import free_port
from tests.doc_blocks import SKIP_CATEGORIES, ShellSession, doc_pages, included_pages, nav_pages, parse_page

REPO_ROOT = Path(__file__).resolve().parents[1]
PAGES = doc_pages(REPO_ROOT)
BLOCKS = [block for page in PAGES for block in parse_page((REPO_ROOT / page).read_text(), page)]
RUNNABLE = [b for b in BLOCKS if b.runnable]
NOT_LINKED = {".git", ".venv", "demo-output", ".bench", ".pytest_cache", "__pycache__", "site"}
README_MAX_LINES = 150  # the README is the front page; the rest belongs in docs/


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
        f"the docs test needs a venv (the Quick start's .venv); {sys.prefix} has no bin/activate")
    root = tmp_path_factory.mktemp("docs")
    for entry in REPO_ROOT.iterdir():
        if entry.name not in NOT_LINKED:
            (root / entry.name).symlink_to(entry)
    (root / ".venv").symlink_to(Path(sys.prefix))
    write_demo_berg_dir(root / "demo-output")
    shell = ShellSession(root, _fresh_terminal_env(), free_port(), tmp_path_factory.mktemp("docs_scratch"))
    yield shell
    shell.stop_services()


def _run_through(shell: ShellSession, index: int):
    """Run every runnable block up to ``index`` (in page order) that has not run yet; the outcome of ``index``."""
    for block in RUNNABLE[:index + 1]:
        if block.name not in shell.outcomes:
            shell.outcomes[block.name] = shell.run(block)
    return shell.outcomes[RUNNABLE[index].name]


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(RUNNABLE)), ids=[b.name for b in RUNNABLE])
def test_block_runs_as_written(session, index):
    block = RUNNABLE[index]
    outcome = _run_through(session, index)
    assert outcome.returncode == 0, (f"{block.name} (section {block.section!r}) failed with status "
                                     f"{outcome.returncode} after {outcome.seconds:.1f} s:\n{block.code}\n"
                                     f"--- output ---\n{outcome.output[-6000:]}")
    assert "Traceback (most recent call last)" not in outcome.output, outcome.output[-6000:]


@pytest.mark.slow
def test_services_stop_cleanly(session):
    """Every service the pages start stops on SIGTERM (its Ctrl-C) with status 0 and says so."""
    _run_through(session, len(RUNNABLE) - 1)
    session.stop_services()
    assert session.services, "no page starts a service, so the HTTP and handle examples were not run"
    for service in session.services:
        assert service.stopped.returncode == 0 and "berg-ray service stopped" in service.stopped.output, (
            service.stopped.output[-4000:])


def test_skips_are_explained_and_no_section_is_skipped_whole():
    """Blocks to run exist; skips are of an allowed kind with a reason; a section none of whose blocks run only
    needs what CI lacks (downloads, a GPU, a cloud cluster) or repeats blocks that run elsewhere."""
    assert {b.language for b in RUNNABLE} == {"bash", "python"}
    assert all(b.language in ("bash", "python", "") for b in BLOCKS), "unknown code block language"
    skipped = [b for b in BLOCKS if b.directive == "skip"]
    for block in skipped:
        category, _, why = block.note.partition(":")
        assert category in SKIP_CATEGORIES and why.strip(), (
            f"{block.name}: a skip needs 'CATEGORY: reason' with CATEGORY in {SKIP_CATEGORIES}, got {block.note!r}")
    run_sections = {(b.page, b.section) for b in RUNNABLE}
    for page, section in {(b.page, b.section) for b in skipped} - run_sections:
        kinds = {b.note.partition(":")[0] for b in skipped if (b.page, b.section) == (page, section)}
        assert kinds <= {"download", "gpu", "cluster", "duplicate"}, (
            f"{page}: section {section!r} has no block this test runs")


def test_a_duplicate_runs_on_the_page_it_names():
    """``skip duplicate: PAGE ...``: PAGE runs a block with exactly this code, so the copy is tested too."""
    duplicates = [b for b in BLOCKS if b.directive == "skip" and b.note.startswith("duplicate")]
    assert duplicates, "the README's examples repeat blocks of the pages (skip duplicate)"
    for block in duplicates:
        page = block.note.partition(":")[2].split()[0]
        assert page in PAGES, f"{block.name}: {page!r} is not a page ({PAGES})"
        assert any(b.page == page and b.code == block.code for b in RUNNABLE), (
            f"{block.name}: {page} runs no block with this code; copy it from there exactly")


def test_the_readme_is_a_front_page_with_the_quick_start():
    """The Quick start is the README's two commands; the README stays short and every page is in the nav."""
    readme = [b for b in BLOCKS if b.page == "README.md"]
    quick_start = [b for b in readme if b.section == "Quick start" and b.language == "bash"]
    assert quick_start[0].directive == "skip" and quick_start[0].note.startswith("quick-start")
    commands = [line for line in quick_start[0].code.splitlines() if line.strip()]
    assert commands == ["bash scripts/demo.sh", "bash scripts/test.sh"]
    lines = len((REPO_ROOT / "README.md").read_text().splitlines())
    assert lines <= README_MAX_LINES, (f"README.md has {lines} lines; move detail into docs/ "
                                       f"(at most {README_MAX_LINES})")
    on_disk = {str(p.relative_to(REPO_ROOT / "docs")) for p in (REPO_ROOT / "docs").rglob("*.md")
               if "hooks" not in p.parts}
    nav = set(nav_pages(REPO_ROOT))
    assert on_disk <= nav, f"pages not in mkdocs.yml's nav (their blocks would never run): {sorted(on_disk - nav)}"
    assert all((REPO_ROOT / source).is_file() for source in included_pages(REPO_ROOT).values())
