"""Old module paths of berg_ray that moved, kept importable with a DeprecationWarning.

``import berg_ray.cluster.local`` (say) still works: a finder on ``sys.meta_path`` answers for the old name with the
module at its new path (the same module object, so its functions and globals are the new ones) and warns once per
old name. Remove an entry one release after it was deprecated.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

# old dotted path -> new dotted path (the package layout of 0.2; see the docs' "Package layout")
MOVED_MODULES: dict[str, str] = {
    "berg_ray.device": "berg_ray.runtime.device",
    "berg_ray.precision": "berg_ray.runtime.precision",
    "berg_ray.threads": "berg_ray.runtime.threads",
    "berg_ray.local_ray": "berg_ray.cluster.local",
    "berg_ray.ray_setup": "berg_ray.cluster.session",
    "berg_ray.accelerators": "berg_ray.cluster.accelerators",
    "berg_ray.metrics": "berg_ray.cluster.metrics",
    "berg_ray.console_noise": "berg_ray.cluster.console_noise",
    "berg_ray.storage_s3": "berg_ray.storage.s3",
    "berg_ray.publish": "berg_ray.storage.publish",
    "berg_ray.paths": "berg_ray.storage.paths",
    "berg_ray.cli_options": "berg_ray.cli.options",
    "berg_ray.cli_parser": "berg_ray.cli.parser",
    "berg_ray.encode_input": "berg_ray.cli.encode_input",
    "berg_ray.stimulus": "berg_ray.validation.videos",
    "berg_ray.numbers": "berg_ray.validation.numbers",
    "berg_ray.names": "berg_ray.validation.names",
    "berg_ray.redact": "berg_ray.validation.redact",
}


class _MovedModuleLoader(importlib.abc.Loader):
    """Loads an old name as the module at its new path."""

    def __init__(self, new_name: str):
        self.new_name = new_name

    def create_module(self, spec):
        warnings.warn(f"{spec.name} moved to {self.new_name}; import it from there "
                      f"(the old path will be removed)", DeprecationWarning, stacklevel=2)
        return importlib.import_module(self.new_name)

    def exec_module(self, module) -> None:
        """Nothing to run: the new module ran when it was imported."""


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Finds the old names in ``MOVED_MODULES``; every other name is left to the usual finders."""

    def find_spec(self, fullname, path=None, target=None):
        new_name = MOVED_MODULES.get(fullname)
        if new_name is None:
            return None
        return importlib.util.spec_from_loader(fullname, _MovedModuleLoader(new_name))


def install() -> None:
    """Put the finder on ``sys.meta_path`` once (idempotent)."""
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())
