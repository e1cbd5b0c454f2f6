"""One small registry type, shared by model variants, metrics and datasets.

A registry maps names to objects (classes or functions). Built-in entries are
registered by the decorator when their module is imported; the registry
imports its built-in modules lazily, on first use, so that importing the
package stays cheap and no star-import side effects are needed. Third-party
entries come from a Python entry-point group (for example ``vaebench.models``)
and are loaded lazily too: a package that declares

    [project.entry-points."vaebench.models"]
    my_vae = "my_pkg.my_vae:MyVAE"

is found the first time the registry is asked for a name or a listing.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from vaebench.errors import UserError

T = TypeVar("T")

__all__ = ["DuplicateNameError", "PluginError", "Registry", "UnknownNameError"]


class UnknownNameError(UserError, LookupError):
    """A name that is not registered; the message lists close matches and all names."""

    def __init__(self, kind: str, name: str, known: list[str]):
        self.kind, self.name, self.known = kind, name, known
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        super().__init__(f"unknown {kind} {name!r}.{hint} Known {kind}s: {', '.join(known) or '(none)'}.")

    def __str__(self) -> str:  # LookupError would quote the whole message
        return self.args[0]


class DuplicateNameError(ValueError):
    """A second, different object registered under a name already taken."""


class PluginError(UserError, LookupError):
    """A plug-in asked for by name that could not be loaded or was refused; the message says why."""

    def __str__(self) -> str:
        return self.args[0]


class Registry(Generic[T]):
    """Name -> object map with a refusing decorator, wildcard listing and entry points.

    Args:
        kind: what the entries are, for messages ("model", "metric", "dataset").
        group: entry-point group that third-party packages register under.
        builtin_modules: modules imported on first use; their decorators register
            the built-in entries.
    """

    def __init__(self, kind: str, group: str, builtin_modules: tuple[str, ...] = ()):
        self.kind = kind
        self.group = group
        self._builtin_modules = builtin_modules
        self._entries: dict[str, T] = {}
        self._sources: dict[str, str] = {}  # name -> where its entry came from, for messages
        self._refused: dict[str, str] = {}  # plug-in name -> why it is not registered
        self._loaded = False
        self._loading = False

    # -- registration ---------------------------------------------------------
    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@registry.register("name")``. Refuses a name already taken."""
        if not isinstance(name, str) or not name or not name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(
                f"{self.kind} name must be a non-empty string of letters, digits, '_' or '-'; got {name!r}"
            )

        def decorator(obj: T) -> T:
            existing = self._entries.get(name)
            if existing is not None and not _same_object(existing, obj):
                raise DuplicateNameError(
                    f"{self.kind} name {name!r} is already registered to {_qualname(existing)}; "
                    f"cannot register {_qualname(obj)} under it"
                )
            self._entries[name] = obj
            try:
                obj.registered_name = name  # type: ignore[attr-defined]
            except (AttributeError, TypeError):
                pass
            return obj

        return decorator

    # -- lookup ---------------------------------------------------------------
    def get(self, name: str) -> T:
        """The object registered as ``name``; raises UnknownNameError or PluginError.

        UnknownNameError lists close names; PluginError says why a plug-in of that name could not be
        registered.
        """
        if name not in self._entries:
            self._load()
        try:
            return self._entries[name]
        except KeyError:
            if name in self._refused:
                raise PluginError(self._refused[name]) from None
            raise UnknownNameError(self.kind, name, self.names()) from None

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted registered names matching a shell-style wildcard pattern."""
        self._load()
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def name_of(self, obj: object) -> str:
        """The name ``obj`` is registered under (raises LookupError if it is not)."""
        self._load()
        for name, entry in self._entries.items():
            if _same_object(entry, obj):
                return name
        raise LookupError(f"{_qualname(obj)} is not a registered {self.kind}")

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, T]]:
        """(name, object) for every registered name, sorted by name."""
        return [(n, self._entries[n]) for n in self.names()]

    # -- lazy loading ---------------------------------------------------------
    def _load(self) -> None:
        if self._loaded or self._loading:
            return
        self._loading = True
        try:
            for module in self._builtin_modules:
                importlib.import_module(module)
            for name, entry in self._entries.items():
                self._sources.setdefault(name, f"built-in {_qualname(entry)}")
            for ep in entry_points(group=self.group):
                self._load_plugin(ep)
            self._loaded = True
        finally:
            self._loading = False

    def _load_plugin(self, ep) -> None:
        """Register one entry point; a broken or colliding plug-in is refused with a warning.

        The warning names the plug-in (and what it collides with), and ``get`` of its name says why.
        """
        source = f"plug-in {ep.value} (entry point {ep.name!r} of {self.group!r})"
        try:
            obj = ep.load()  # a plug-in that registers itself by decorator does so here
        except Exception as exc:  # a broken plug-in must not break the tool
            self._refuse(ep.name, f"could not load {self.kind} {source}: {type(exc).__name__}: {exc}")
            return
        existing = self._entries.get(ep.name)
        if existing is not None and not _same_object(existing, obj):
            self._refuse(
                ep.name,
                f"{self.kind} {source} is refused: the name {ep.name!r} is taken by "
                f"{self._sources.get(ep.name, _qualname(existing))}",
            )
            return
        if existing is None and not any(_same_object(obj, e) for e in self._entries.values()):
            self.register(ep.name)(obj)
        self._sources.setdefault(ep.name, source)

    def _refuse(self, name: str, message: str) -> None:
        import warnings

        self._refused[name] = message
        warnings.warn(message, stacklevel=3)


def _same_object(a: object, b: object) -> bool:
    # A module imported twice (importlib.reload, a test module collected twice)
    # re-creates its top-level classes: treat those as the same entry. Objects
    # defined inside functions (qualname with "<locals>" or "<lambda>") never are.
    qualname = _qualname(a)
    return a is b or (qualname == _qualname(b) and "<" not in qualname and not qualname.startswith("?"))


def _qualname(obj: object) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"
