"""Modules that moved in the package regrouping still import from their old paths, with a DeprecationWarning."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from berg_ray._moved import MOVED_MODULES

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "berg_ray"

# one fresh interpreter imports every old path (a warning is issued once per process, at the first import)
PROBE = """
import importlib, json, sys, warnings
import berg_ray
from berg_ray._moved import MOVED_MODULES
found = {}
for old_name, new_name in MOVED_MODULES.items():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = importlib.import_module(old_name)
    new = importlib.import_module(new_name)
    found[old_name] = {"same": old is new, "name": old.__name__,
                       "warnings": [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]}
json.dump(found, sys.stdout)
"""


@pytest.fixture(scope="module")
def imported_old_paths() -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("old_name,new_name", sorted(MOVED_MODULES.items()))
def test_old_path_imports_the_moved_module_and_warns(imported_old_paths, old_name, new_name):
    found = imported_old_paths[old_name]
    assert found["same"] and found["name"] == new_name
    assert any(message.startswith(f"{old_name} moved to {new_name}") for message in found["warnings"])


@pytest.mark.parametrize("old_name", sorted(MOVED_MODULES))
def test_old_path_holds_no_file(old_name):
    relative = Path(*old_name.split(".")[1:])
    assert not (PACKAGE_DIR / relative.with_suffix(".py")).exists()
    assert not (PACKAGE_DIR / relative / "__init__.py").exists()


def test_unknown_names_are_left_to_python():
    with pytest.raises(ModuleNotFoundError):
        __import__("berg_ray.no_such_module")
