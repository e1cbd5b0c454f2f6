"""The shared registry type: refusing duplicates, close-match errors, wildcards, entry points."""

import sys
import textwrap

import pytest

from vaebench.registry import DuplicateNameError, PluginError, Registry, UnknownNameError


def test_register_get_and_wildcards():
    reg = Registry("widget", "vaebench.test_widgets")

    @reg.register("alpha_one")
    def a():
        pass

    @reg.register("alpha_two")
    def b():
        pass

    assert reg.get("alpha_one") is a
    assert reg.names("alpha_*") == ["alpha_one", "alpha_two"]
    assert reg.names("*two") == ["alpha_two"]
    assert "alpha_one" in reg and "beta" not in reg


def test_duplicate_name_is_refused():
    reg = Registry("widget", "vaebench.test_widgets")
    reg.register("x")(lambda: 1)
    with pytest.raises(DuplicateNameError, match="'x' is already registered"):
        reg.register("x")(lambda: 2)


def test_unknown_name_lists_close_matches_and_all_names():
    reg = Registry("widget", "vaebench.test_widgets")
    reg.register("factor_vae")(lambda: 1)
    reg.register("vae")(lambda: 1)
    with pytest.raises(UnknownNameError) as info:
        reg.get("factorvae")
    message = str(info.value)
    assert "Did you mean 'factor_vae'" in message and "Known widgets: factor_vae, vae" in message


def test_bad_names_are_refused():
    reg = Registry("widget", "vaebench.test_widgets")
    with pytest.raises(ValueError, match="name must be"):
        reg.register("has space")


def test_entry_point_plugins_are_discovered_lazily(tmp_path, monkeypatch):
    """A package installed with an entry point in the group is found without being imported first."""
    pkg = tmp_path / "thirdparty_widgets"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("def gizmo():\n    return 42\n")
    dist = tmp_path / "thirdparty_widgets-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-widgets\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        textwrap.dedent("""\
        [vaebench.test_widgets_ep]
        gizmo = thirdparty_widgets:gizmo
        """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry("widget", "vaebench.test_widgets_ep")
    assert "thirdparty_widgets" not in sys.modules
    assert reg.names() == ["gizmo"]
    assert reg.get("gizmo")() == 42


def test_broken_plugin_warns_and_does_not_break_the_registry(tmp_path, monkeypatch):
    dist = tmp_path / "broken-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[vaebench.test_broken]\nbad = no_such_module_xyz:thing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry("widget", "vaebench.test_broken")
    reg.register("good")(lambda: 1)
    with pytest.warns(
        UserWarning, match=r"could not load widget plug-in no_such_module_xyz:thing \(entry point 'bad'"
    ):
        assert reg.names() == ["good"]
    with pytest.raises(PluginError, match="ModuleNotFoundError: No module named 'no_such_module_xyz'"):
        reg.get("bad")  # asked for by name: its own error, not "unknown widget ... did you mean"


def _install(tmp_path, dist_name: str, module: str, source: str, entry_points_txt: str) -> None:
    (tmp_path / f"{module}.py").write_text(source)
    dist = tmp_path / f"{dist_name}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(entry_points_txt)


def test_a_plugin_colliding_with_a_builtin_or_another_plugin_is_refused_naming_both(tmp_path, monkeypatch):
    group = "vaebench.test_collide"
    _install(
        tmp_path,
        "first",
        "first_plugin",
        "def thing():\n    return 1\n",
        f"[{group}]\nbuiltin = first_plugin:thing\nshared = first_plugin:thing\n",
    )
    _install(
        tmp_path,
        "second",
        "second_plugin",
        "def other():\n    return 2\n",
        f"[{group}]\nshared = second_plugin:other\n",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry("widget", group)

    @reg.register("builtin")
    def builtin():
        return 0

    with pytest.warns(UserWarning) as caught:
        names = reg.names()
    messages = " | ".join(str(w.message) for w in caught)
    assert (
        "plug-in first_plugin:thing (entry point 'builtin'" in messages and "is taken by built-in" in messages
    )
    assert reg.get("builtin")() == 0  # the built-in keeps its name
    assert names == ["builtin", "shared"] and reg.get("shared")() in (1, 2)
    assert "is refused: the name 'shared' is taken by plug-in" in messages  # the other of the two, named
    assert messages.count("is refused") == 2
