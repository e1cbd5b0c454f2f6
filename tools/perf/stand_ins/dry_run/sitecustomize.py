"""Hides the installed numba, filelock and submitit, as the device machine lacks them.

``gpu_check.sh --dry-run`` puts this folder first on ``PYTHONPATH``; Python imports
``sitecustomize`` at start-up, so every process of the rehearsal sees the device machine's
packages. A module of the same name outside site-packages (the filelock stand-in) still imports.
"""

import sys
from importlib.machinery import PathFinder


class _HideInstalled:
    NAMES = ("numba", "filelock", "submitit")

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] not in self.NAMES:
            return None
        spec = PathFinder.find_spec(name, path)
        if spec is not None and "-packages" in str(spec.origin or spec.submodule_search_locations):
            raise ImportError(f"{name} is hidden by gpu_check.sh --dry-run (absent on the device machine)")
        return spec


sys.meta_path.insert(0, _HideInstalled())
