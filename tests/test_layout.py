"""The package tree shows the architecture: model -> checkpoint -> inference -> api / serve / sweep / experiments,
with the infrastructure (runtime, storage, cluster, validation, config, errors) under all of them.

These tests read the source (no imports run), so a change that blurs the layers fails here, not in review.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "berg_ray"

# the modules that stay at the package root: the public entry points and the package's own plumbing
ROOT_MODULES = {"__init__", "_moved", "berg_api", "demo", "errors", "inference", "outputs", "units"}

INFRASTRUCTURE = {"config", "errors", "validation", "runtime", "storage", "cluster"}
APPLICATIONS = {"berg_api", "serve", "sweep", "experiments", "cli", "demo"}
# area -> the areas it must never import (directly, at any depth of the module)
FORBIDDEN = {
    **{area: {"model", "checkpoint", "inference", "mei", "analysis", *APPLICATIONS} for area in INFRASTRUCTURE},
    "model": {"checkpoint", "inference", "storage", "cluster", "download", *APPLICATIONS},
    "checkpoint": {"inference", *APPLICATIONS},
    "inference": {"checkpoint", "storage", "cluster", *APPLICATIONS},
    "analysis": {"serve", "sweep", "experiments", "cli", "cluster"},
    "mei": {"serve", "sweep", "experiments", "cli", "cluster", "storage"},
}
MAX_LINES = 400  # shared/docs/style.md


def _area(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def _imported_areas(path: Path) -> set[str]:
    areas = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = ([f"berg_ray.{alias.name}" for alias in node.names] if node.module == "berg_ray"
                     else [node.module])
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        areas.update(name.split(".")[1] for name in names if name.startswith("berg_ray."))
    return areas


def test_package_root_holds_only_entry_points():
    loose = {path.stem for path in PACKAGE.glob("*.py")}
    assert loose == ROOT_MODULES, (f"new modules at the package root: {sorted(loose - ROOT_MODULES)}; put them in "
                                   f"the subpackage of their concern (runtime, cluster, storage, validation, ...)")


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_layers_import_only_downwards(path):
    area = _area(path)
    wrong = _imported_areas(path) & FORBIDDEN.get(area, set())
    assert not wrong, f"{path.relative_to(ROOT)} ({area}) imports {sorted(wrong)}, which sit above it"


def test_the_layer_check_can_fail(tmp_path):
    module = tmp_path / "bad.py"
    module.write_text("from berg_ray.serve.app import build_app\nimport berg_ray.sweep.runner\n"
                      "from berg_ray import berg_api\n")
    assert _imported_areas(module) == {"serve", "sweep", "berg_api"}


@pytest.mark.parametrize("folder", ["berg_ray", "benchmarks", "scripts", "tests"])
def test_files_stay_under_the_line_limit(folder):
    long_files = {str(path.relative_to(ROOT)): n for path in (ROOT / folder).rglob("*.py")
                  if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long_files, f"files over {MAX_LINES} lines (split them by concern): {long_files}"
