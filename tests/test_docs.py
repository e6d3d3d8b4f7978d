"""The documentation site builds with ``mkdocs build --strict``: a broken link, a missing page or anchor, an
unresolved API reference (mkdocstrings) or a configuration reference that cannot be generated fails the build."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a whole command in a subprocess (~10 s)
REPO_ROOT = Path(__file__).resolve().parents[1]
BUILD_TIMEOUT_S = 300


def _build(site: Path, root: Path = REPO_ROOT) -> subprocess.CompletedProcess:
    """``mkdocs build --strict`` of the site of ``root`` into ``site``, berg_ray imported from this checkout."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)], cwd=root, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=BUILD_TIMEOUT_S)


def test_the_site_builds_strictly_with_generated_reference(tmp_path):
    done = _build(tmp_path / "site")
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout[-6000:]}"
    assert "WARNING" not in done.stdout, done.stdout[-6000:]
    config = (tmp_path / "site" / "reference" / "config" / "index.html").read_text()
    from berg_ray.config import ServeArgs, SweepArgs

    for name in [*ServeArgs.model_fields, *SweepArgs.model_fields, "RAY_VERSION", "MEI_STEPS"]:
        assert f"<code>{name}</code>" in config, f"the configuration reference lacks {name}"
    errors = (tmp_path / "site" / "reference" / "errors" / "index.html").read_text()
    assert "InvalidBehaviourError" in errors, "the API reference of berg_ray.errors was not generated"
    included = (tmp_path / "site" / "numerics" / "benchmark-results" / "index.html").read_text()
    assert "Benchmark results" in included


def test_a_broken_link_fails_the_build(tmp_path):
    """The check can fail: the same build over a copy of the pages with one link to a missing page."""
    copy = tmp_path / "repo"
    copy.mkdir()
    for entry in REPO_ROOT.iterdir():
        if entry.name not in (".git", "docs", "site", ".venv"):
            (copy / entry.name).symlink_to(entry)
    docs = copy / "docs"
    subprocess.run(["cp", "-r", str(REPO_ROOT / "docs"), str(docs)], check=True)
    page = docs / "sweeps.md"
    page.write_text(page.read_text() + "\nSee [the missing page](no-such-page.md).\n")
    done = _build(tmp_path / "site", root=copy)
    assert done.returncode != 0 and "no-such-page.md" in done.stdout, done.stdout[-4000:]
