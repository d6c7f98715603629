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

PLUGIN_GUIDE = Path(__file__).resolve().parents[1] / "docs" / "plugins" / "index.md"
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
def test_every_hook_is_documented_in_the_plugin_guide(hook):
    text = PLUGIN_GUIDE.read_text(encoding="utf-8")
    params = list(inspect.signature(getattr(hookspecs, hook)).parameters)
    assert re.search(rf"`{hook}\({', '.join(params)}\)`", text), (
        f"docs/plugins/index.md must document `{hook}({', '.join(params)})`")


def test_every_kind_has_a_hook():
    assert {f"register_{k}" for k in KINDS} | {"register_commands"} == set(HOOK_NAMES)


def test_check_pending_still_refuses_an_unchecked_misspelled_hook():
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


def _own_entry_points():
    from sandmle.core.plugins import _own_entry_points

    own = _own_entry_points()
    assert {"openai", "hf", "trl", "verl", "docker", "ray", "mlebench"} <= own
    return own


def _loaded(manager):
    return {manager.pm.get_name(p) for p in manager.pm.get_plugins()}


def test_allowlist_limits_third_party_plugins_but_never_drops_our_own(monkeypatch):
    own = _own_entry_points()
    monkeypatch.setenv("SANDMLE_LOAD_PLUGINS", "")
    manager = build_manager()
    assert _loaded(manager) == set(DEFAULT_PLUGINS) | own  # built-ins and our own always load
    assert "baseline" in manager.fill_registry().names("backends")
    monkeypatch.setenv("SANDMLE_LOAD_PLUGINS", "someone-elses-plugin")
    assert _loaded(build_manager()) == set(DEFAULT_PLUGINS) | own


def test_blocklist_blocks_our_own_and_builtins_by_name_but_not_the_essential(monkeypatch):
    own = _own_entry_points()
    monkeypatch.setenv("SANDMLE_BLOCK_PLUGINS", "docker, sandmle.scaffolds.plugin,sandmle.core.commands")
    manager = build_manager()
    loaded = _loaded(manager)
    assert "docker" not in loaded and "sandmle.scaffolds.plugin" not in loaded
    assert "sandmle.core.commands" in loaded  # essential: there would be no CLI to report with
    assert loaded == (set(DEFAULT_PLUGINS) | own) - {"docker", "sandmle.scaffolds.plugin"}
    assert sorted(manager.blocked) == ["docker", "sandmle.scaffolds.plugin"]
    registry = manager.fill_registry()
    assert "docker" not in registry.names("sandboxes") and registry.names("scaffolds") == []


def test_misspelled_hook_refuses_only_that_plugin_naming_the_closest_hook():
    from sandmle.core.plugins import UnknownHookError

    class Typo:
        @hookimpl
        def register_grader(self, register):  # misspelled on purpose
            register("never", lambda cfg: None)

    manager = build_manager(load_entry_points=False)
    with pytest.raises(UnknownHookError) as err:
        manager.register_plugin(Typo(), "typo")
    msg = str(err.value)
    assert "plugin 'typo'" in msg and "'register_grader'" in msg
    assert "did you mean 'register_graders'?" in msg and "SANDMLE_BLOCK_PLUGINS=typo" in msg
    assert "typo" not in _loaded(manager)
    manager.pm.check_pending()  # nothing of it is left behind
    assert "never" not in manager.fill_registry().names("graders")


def test_a_hook_that_raises_is_reported_and_the_other_plugins_still_register():
    class Raises:
        @hookimpl
        def register_graders(self, register):
            raise RuntimeError("bug in the plugin")

    from sandmle.core.plugins import PluginLoadWarning

    manager = build_manager(load_entry_points=False)
    manager.pm.register(Raises(), name="raises")
    with pytest.warns(PluginLoadWarning, match="raises"):
        registry = manager.fill_registry()
    assert "default" in registry.names("graders") and "react" in registry.names("scaffolds")
    [failure] = manager.failures
    assert failure.name == "raises"
    assert "RuntimeError: bug in the plugin in its register_graders hook" in failure.error


MAPE_PLUGIN = '''
from sandmle.core import hookimpl


@hookimpl
def metric_lower_is_better(metric):
    return True if metric == "mape" else None  # a fraction, where the built-in mape is in percent
'''


def test_a_plugin_metric_named_like_a_built_in_is_an_error_naming_both(tmp_path, capsys):
    """A plugin's `mape` (a fraction) silently collided with the built-in (percent): a task was
    graded x100, with no medal and no warning. Now loading a task with that metric refuses,
    naming both plugins."""
    import yaml

    from sandmle.core.cli import main
    from sandmle.core.plugins import reset
    from sandmle.graders.toy import make_toy_task

    task = make_toy_task(tmp_path / "task", "regression")
    meta = yaml.safe_load((task.root / "task.yaml").read_text())
    meta.update(metric="mape", thresholds=None)
    (task.root / "task.yaml").write_text(yaml.safe_dump(meta))
    (tmp_path / "mape_plugin.py").write_text(MAPE_PLUGIN)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"plugins: [{tmp_path / 'mape_plugin.py'}]\noutput_dir: {tmp_path / 'out'}\n"
                      f"tasks: {{source: {{name: directory, args: {{path: {task.root}}}}}}}\nevaluation: {{}}\n")
    reset()
    try:
        with pytest.raises(SystemExit) as info:
            main(["eval", str(recipe), "--max-episodes", "0"])
    finally:
        reset()
    err = " ".join(capsys.readouterr().err.split())
    assert info.value.code == 2 and "Traceback" not in err
    assert "metric 'mape' is claimed by several plugins:" in err
    assert "'sandmle.graders.plugin' (lower is better)" in err and f"'{tmp_path / 'mape_plugin.py'}'" in err
