"""Names that become path components, and paths that must stay under a root.

A suite's name, a run id, a dataset's name: each becomes one component of a
path the runner writes. ``check_component`` accepts only a safe one (letters,
digits, ``.``, ``_``, ``-``, not starting with a dot), so no name can climb out
of its directory (``..``), replace it (``/abs``) or nest one (``a/b``).
``path_under`` joins checked components to a root and checks that the result
still lies under the root. The check is lexical: a symlink the user made inside
the root (checkpoints on a scratch disk, say) is theirs to point elsewhere.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from vaebench.errors import UserError

__all__ = ["SAFE_COMPONENT", "UnsafeNameError", "check_component", "path_under"]

#: What a path component may be: letters, digits and ``._-``, not starting with a dot.
SAFE_COMPONENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
ACCEPTED = "letters, digits, '.', '_' and '-', not starting with a dot"


class UnsafeNameError(UserError, ValueError):
    """A name that cannot be one path component, or a path that would leave its root."""


def check_component(value: object, what: str) -> str:
    """``value`` when it is one safe path component; else ``UnsafeNameError`` naming ``what``."""
    if not isinstance(value, str) or not SAFE_COMPONENT.fullmatch(value):
        raise UnsafeNameError(
            f"{what} {value!r} cannot be used as a file or directory name; it may hold only {ACCEPTED}"
        )
    return value


def path_under(root: Path | str, *components: str, what: str = "name") -> Path:
    """``root/components...``, each component checked, and the result checked to lie under ``root``."""
    root = Path(root)
    for component in components:
        check_component(component, what)
    path = root.joinpath(*components)
    if not Path(os.path.normpath(path)).is_relative_to(os.path.normpath(root)):
        raise UnsafeNameError(f"{path} lies outside {root}")  # unreachable with safe components
    return path
