"""Plugin manager: every hook works for an ad-hoc plugin, built-ins load through the same hooks,
misspelled hooks fail loudly, and the meta-tests keep hooks tested and documented."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import click
import pluggy
import pytest

from sandmle.core import hookimpl, hookspecs
from sandmle.core.plugins import DEFAULT_PLUGINS, build_manager
from sandmle.core.registry import KINDS

README = Path(__file__).resolve().parents[1] / "README.md"
HOOK_NAMES = sorted(n for n, f in vars(hookspecs).items()
                    if n.startswith("register_") and callable(f))


def _registry_with_plugin(kind: str, plugin_name: str = "adhoc"):
    """Register an ad-hoc plugin object implementing ``register_<kind>`` and fill a registry."""

    class Plugin:
        __name__ = plugin_name

    def impl(register):
        register(f"{kind}-thing", lambda cfg: f"built {kind}", description=f"a test {kind}")

    impl.__name__ = f"register_{kind}"
    setattr(Plugin, f"register_{kind}", staticmethod(hookimpl(impl)))
    manager = build_manager(load_entry_points=False)
    manager.pm.register(Plugin(), name=plugin_name)
    registry = manager.fill_registry()
    info = registry.get(kind, f"{plugin_name}/{kind}-thing")
    assert info.plugin == plugin_name and info.description == f"a test {kind}"
    assert registry.create(kind, f"{kind}-thing") == f"built {kind}"
    return registry


def test_hook_register_generators():
    _registry_with_plugin("generators")


def test_hook_register_scaffolds():
    _registry_with_plugin("scaffolds")


def test_hook_register_graders():
    _registry_with_plugin("graders")


def test_hook_register_rewards():
    _registry_with_plugin("rewards")


def test_hook_register_trainers():
    _registry_with_plugin("trainers")


def test_hook_register_sandboxes():
    _registry_with_plugin("sandboxes")


def test_hook_register_backends():
    _registry_with_plugin("backends")


def test_hook_register_task_sources():
    _registry_with_plugin("task_sources")


def test_hook_register_executors():
    _registry_with_plugin("executors")


def test_hook_register_commands():
    class Plugin:
        @hookimpl
        def register_commands(self, cli):
            @cli.command("hello-test")
            def hello():
                click.echo("hi")

    manager = build_manager(load_entry_points=False)
    manager.pm.register(Plugin(), name="cmd-plugin")
    group = click.Group("root")
    manager.pm.hook.register_commands(cli=group)
    assert "hello-test" in group.commands
    assert "run" in group.commands and "plugins" in group.commands  # the core's own, same hook


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_every_hook_has_a_test(hook):
    assert f"test_hook_{hook}" in globals(), f"hook {hook} has no test_hook_{hook}"


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_every_hook_is_documented_in_readme(hook):
    text = README.read_text(encoding="utf-8")
    params = list(inspect.signature(getattr(hookspecs, hook)).parameters)
    assert re.search(rf"`{hook}\({', '.join(params)}\)`", text), (
        f"README plugin-author section must document `{hook}({', '.join(params)})`")


def test_every_kind_has_a_hook():
    assert {f"register_{k}" for k in KINDS} | {"register_commands"} == set(HOOK_NAMES)


def test_misspelled_hook_is_refused():
    class Typo:
        @hookimpl
        def register_scafolds(self, register):  # misspelled on purpose
            pass

    manager = build_manager(load_entry_points=False)
    manager.pm.register(Typo(), name="typo")
    with pytest.raises(pluggy.PluginValidationError, match="register_scafolds"):
        manager.pm.check_pending()


def test_builtins_are_registered_like_plugins():
    manager = build_manager(load_entry_points=False)
    names = {manager.pm.get_name(p) for p in manager.pm.get_plugins()}
    assert set(DEFAULT_PLUGINS) <= names
    registry = manager.fill_registry()
    for kind, name in [("scaffolds", "react"), ("graders", "default"), ("sandboxes", "local"),
                       ("generators", "procedural"), ("rewards", "milestone"),
                       ("task_sources", "directory"), ("executors", "local")]:
        assert registry.get(kind, name).plugin.startswith("sandmle."), (kind, name)


def test_allowlist_limits_entry_point_plugins(monkeypatch):
    monkeypatch.setenv("SANDMLE_LOAD_PLUGINS", "")
    manager = build_manager()
    names = {manager.pm.get_name(p) for p in manager.pm.get_plugins()}
    assert names == set(DEFAULT_PLUGINS)  # built-ins always load
    monkeypatch.setenv("SANDMLE_LOAD_PLUGINS", "backends")
    manager = build_manager()
    names = {manager.pm.get_name(p) for p in manager.pm.get_plugins()}
    assert names == set(DEFAULT_PLUGINS) | {"backends"}
