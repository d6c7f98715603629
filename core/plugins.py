"""The plugin manager: loads entry points, built-in plugins and recipe-local plugins.

Load order (tox/llm style): entry points of group ``sandmle`` (our own integrations under
``plugins/`` are declared there too), then :data:`DEFAULT_PLUGINS`. Each plugin's hook names are
checked as it is registered, so a misspelled hook (``register_grader``) refuses that one plugin
with a message naming the closest valid hook, and every other plugin still loads.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import os
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any

import pluggy

from . import hookspecs
from .errors import SandmleError
from .registry import KINDS, Registry

ENTRY_POINT_GROUP = "sandmle"

#: Built-in component modules, registered through the same hooks as any plugin.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "sandmle.graders.plugin",
    "sandmle.sandboxes.plugin",
    "sandmle.generators.plugin",
    "sandmle.scaffolds.plugin",
    "sandmle.evaluation.plugin",
    "sandmle.core.commands",
)


#: Built-in modules that cannot be blocked: without them there is no CLI to report anything.
ESSENTIAL_PLUGINS: tuple[str, ...] = ("sandmle.core.commands",)


class PluginLoadWarning(UserWarning):
    """A plugin could not be loaded (the CLI prints these itself, once)."""


@dataclass
class PluginLoadFailure:
    """A plugin that could not be loaded, or whose hook failed; reported, never fatal.

    ``error`` reads as a predicate of the plugin's name: ``f"plugin {name!r} {error}"``."""

    name: str
    error: str


@dataclass
class PluginManager:
    """pluggy manager plus the registry its hooks filled, built once per process."""

    pm: pluggy.PluginManager
    registry: Registry = field(default_factory=Registry)
    failures: list[PluginLoadFailure] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    distributions: dict[str, str] = field(default_factory=dict)  # plugin name -> distribution
    blocked: list[str] = field(default_factory=list)
    _filled: bool = False

    def fail(self, name: str, error: str) -> None:
        """Record a failure of plugin ``name`` and warn (the CLI shows each failure once)."""
        self.failures.append(PluginLoadFailure(name, error))
        warnings.warn(f"sandmle plugin {name!r} {error}", PluginLoadWarning, stacklevel=3)

    def _call_register(self, kind: str, plugin_name: str, function: Any) -> None:
        try:
            function(register=self.registry.registrar(kind, plugin_name))
        except Exception as exc:  # noqa: BLE001 - one plugin's bug must not hide the others
            self.fail(plugin_name, f"raised {type(exc).__name__}: {exc} in its register_{kind} hook "
                                   f"(disable it with SANDMLE_BLOCK_PLUGINS={plugin_name})")

    def fill_registry(self) -> Registry:
        """Call every ``register_<kind>`` hook once and collect the components."""
        if self._filled:
            return self.registry
        for kind in KINDS:
            hook = getattr(self.pm.hook, f"register_{kind}")
            for impl in hook.get_hookimpls():
                self._call_register(kind, impl.plugin_name, impl.function)
        self._filled = True
        return self.registry

    def add_commands(self, cli: Any) -> None:
        """Call every plugin's ``register_commands``; a plugin whose hook raises is reported."""
        for impl in self.pm.hook.register_commands.get_hookimpls():
            try:
                impl.function(cli=cli)
            except Exception as exc:  # noqa: BLE001
                self.fail(impl.plugin_name, f"raised {type(exc).__name__}: {exc} in its register_commands "
                                            f"hook (disable it with SANDMLE_BLOCK_PLUGINS={impl.plugin_name})")

    def plugins(self) -> list[dict[str, Any]]:
        """One row per loaded plugin: name, hooks it implements, distribution version."""
        rows = []
        for plugin in self.pm.get_plugins():
            name = self.pm.get_name(plugin) or repr(plugin)
            hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
            version = self.versions.get(name) or _builtin_version(name)
            rows.append({
                "name": name,
                "hooks": hooks,
                "version": version,
                "builtin": name in DEFAULT_PLUGINS or name in _own_entry_points(),
            })
        return sorted(rows, key=lambda r: (not r["builtin"], r["name"]))

    def register_plugin(self, plugin: Any, name: str) -> None:
        """Register ``plugin`` and refuse it (unregistered again) when a hook name is unknown."""
        self.pm.register(plugin, name=name)
        unknown = _unknown_hooks(self.pm).get(name)
        if unknown:
            self.pm.unregister(name=name)
            raise UnknownHookError(name, unknown, self.distributions.get(name))

    def load_module(self, spec: str) -> None:
        """Register a module by import path or ``.py`` file path (recipe ``plugins:`` key)."""
        if spec.endswith(".py"):
            path = os.path.abspath(spec)
            modname = "sandmle_local_" + os.path.splitext(os.path.basename(path))[0]
            loader = importlib.machinery.SourceFileLoader(modname, path)
            mod = importlib.util.module_from_spec(importlib.util.spec_from_loader(modname, loader))
            loader.exec_module(mod)
        else:
            mod = importlib.import_module(spec)
        if self.pm.is_registered(mod):
            return
        self.register_plugin(mod, spec)
        if self._filled:  # late registration: add its components to the live registry
            for kind in KINDS:
                hook = getattr(mod, f"register_{kind}", None)
                if hook is not None:
                    self._call_register(kind, spec, hook)


class UnknownHookError(SandmleError):
    """A plugin implements a hook sandmle does not have (usually a misspelling)."""

    def __init__(self, plugin: str, hooks: list[str], distribution: str | None = None):
        self.plugin, self.hooks = plugin, hooks
        valid = sorted(n for n, fn in vars(hookspecs).items() if hasattr(fn, "sandmle_spec"))
        parts = []
        for hook in hooks:
            close = difflib.get_close_matches(hook, valid, n=1, cutoff=0.6)
            parts.append(f"{hook!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        uninstall = f" or `pip uninstall {distribution}`" if distribution else ""
        #: the message without the leading plugin name (for lists that name the plugin already)
        self.detail = (
            f"implements unknown hook {', '.join(parts)}, so it was not loaded; valid hooks: "
            f"{', '.join(valid)}. Fix the hook's name, or disable the plugin with "
            f"SANDMLE_BLOCK_PLUGINS={plugin}{uninstall}"
        )
        super().__init__(f"plugin {plugin!r} {self.detail}")


def _unknown_hooks(pm: pluggy.PluginManager) -> dict[str, list[str]]:
    """Plugin name -> hook names it implements that no hookspec declares (what
    ``pm.check_pending()`` would refuse, but per plugin instead of the first one found)."""
    found: dict[str, list[str]] = {}
    for name, caller in vars(pm.hook).items():
        if name.startswith("_") or not isinstance(caller, pluggy.HookCaller) or caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if not impl.optionalhook:
                found.setdefault(impl.plugin_name, []).append(name)
    return found


def _builtin_version(name: str) -> str | None:
    if name.startswith("sandmle."):
        return _sandmle_version()
    return None


def _sandmle_version() -> str:
    try:
        return importlib.metadata.version("sandmle")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree
        return "0+unknown"


def _own_entry_points() -> set[str]:
    try:
        dist = importlib.metadata.distribution("sandmle")
    except importlib.metadata.PackageNotFoundError:
        return set()
    return {ep.name for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP}


def _env_names(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {p.strip() for p in raw.split(",") if p.strip()}


def build_manager(load_entry_points: bool = True) -> PluginManager:
    """Create a manager with entry-point plugins and the built-ins registered.

    - ``SANDMLE_LOAD_PLUGINS=a,b``: of the *third-party* entry-point plugins, load only those
      named (by entry-point or distribution name); an empty value loads none. sandmle's own
      entry-point plugins (``backends``, ``docker``, ...) and built-ins always load.
    - ``SANDMLE_BLOCK_PLUGINS=a,b``: never load the plugins named (third-party or our own,
      built-in modules included, except :data:`ESSENTIAL_PLUGINS`).

    A plugin that raises on import, or implements a misspelled hook, becomes a warning and a
    :class:`PluginLoadFailure`; the others still load.
    """
    pm = pluggy.PluginManager("sandmle")
    pm.add_hookspecs(hookspecs)
    manager = PluginManager(pm)
    blocked = _env_names("SANDMLE_BLOCK_PLUGINS") or set()
    if load_entry_points:
        allow = _env_names("SANDMLE_LOAD_PLUGINS")
        own = _own_entry_points()
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist_name = ep.dist.name if ep.dist is not None else ""
            if ep.name in blocked or dist_name in blocked:
                manager.blocked.append(ep.name)
                continue
            if allow is not None and ep.name not in own and ep.name not in allow and dist_name not in allow:
                continue
            if pm.get_plugin(ep.name) is not None:
                continue
            if dist_name:
                manager.distributions[ep.name] = dist_name
            try:
                manager.register_plugin(ep.load(), ep.name)
                if ep.dist is not None:
                    manager.versions[ep.name] = ep.dist.version
            except UnknownHookError as exc:
                manager.fail(ep.name, exc.detail)
            except Exception as exc:  # a broken plugin must not take the CLI down
                manager.fail(ep.name, f"failed to load: {type(exc).__name__}: {exc} (disable it with "
                                      f"SANDMLE_BLOCK_PLUGINS={ep.name})")
    for modname in DEFAULT_PLUGINS:
        if modname in blocked and modname not in ESSENTIAL_PLUGINS:
            manager.blocked.append(modname)
            continue
        pm.register(importlib.import_module(modname), name=modname)
    pm.check_pending()  # every plugin with an unknown hook was refused above: nothing is pending
    if os.environ.get("SANDMLE_TRACE_PLUGINS"):
        pm.trace.root.setwriter(lambda msg: sys.stderr.write(msg))
        pm.enable_tracing()
    return manager


_manager: PluginManager | None = None


def get_manager() -> PluginManager:
    """The process-wide manager (created lazily, with entry points)."""
    global _manager
    if _manager is None:
        _manager = build_manager()
    return _manager


def get_registry() -> Registry:
    """The process-wide registry, filled from every loaded plugin."""
    return get_manager().fill_registry()


def reset() -> None:
    """Forget the process-wide manager (tests, or after installing a plugin)."""
    global _manager
    _manager = None
