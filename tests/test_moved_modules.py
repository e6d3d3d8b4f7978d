"""Modules that moved in the package regrouping still import from their old paths, with a DeprecationWarning."""

import subprocess
import sys
from pathlib import Path

import pytest

from berg_ray._moved import MOVED_MODULES

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "berg_ray"


@pytest.mark.parametrize("old_name,new_name", sorted(MOVED_MODULES.items()))
def test_old_path_imports_the_moved_module_and_warns(old_name, new_name):
    script = (f"import importlib, warnings\n"
              f"warnings.simplefilter('error', DeprecationWarning)\n"
              f"import berg_ray\n"
              f"try:\n    importlib.import_module({old_name!r})\n"
              f"except DeprecationWarning as warning:\n    print('warned:', warning)\n"
              f"warnings.simplefilter('ignore', DeprecationWarning)\n"
              f"old = importlib.import_module({old_name!r})\n"
              f"new = importlib.import_module({new_name!r})\n"
              f"print('same:', old is new, old.__name__)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"warned: {old_name} moved to {new_name}" in done.stdout
    assert f"same: True {new_name}" in done.stdout


@pytest.mark.parametrize("old_name", sorted(MOVED_MODULES))
def test_old_path_holds_no_file(old_name):
    relative = Path(*old_name.split(".")[1:])
    assert not (PACKAGE_DIR / relative.with_suffix(".py")).exists()
    assert not (PACKAGE_DIR / relative / "__init__.py").exists()


def test_unknown_names_are_left_to_python():
    with pytest.raises(ModuleNotFoundError):
        __import__("berg_ray.no_such_module")
