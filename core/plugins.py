"""The plugin manager: loads entry points, built-in plugins and recipe-local plugins.

Load order (tox/llm style): third-party entry points of group ``sandmle`` (our own integrations
under ``plugins/`` are declared there too), then :data:`DEFAULT_PLUGINS`, then
``pm.check_pending()`` so a misspelled hook name fails loudly instead of being ignored.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any

import pluggy

from . import hookspecs
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


@dataclass
class PluginLoadFailure:
    """A plugin that could not be loaded; reported, never fatal."""

    name: str
    error: str


@dataclass
class PluginManager:
    """pluggy manager plus the registry its hooks filled, built once per process."""

    pm: pluggy.PluginManager
    registry: Registry = field(default_factory=Registry)
    failures: list[PluginLoadFailure] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    _filled: bool = False

    def fill_registry(self) -> Registry:
        """Call every ``register_<kind>`` hook once and collect the components."""
        if self._filled:
            return self.registry
        for kind in KINDS:
            hook = getattr(self.pm.hook, f"register_{kind}")
            for impl in hook.get_hookimpls():
                register = self.registry.registrar(kind, impl.plugin_name)
                impl.function(register=register)
        self._filled = True
        return self.registry

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
        self.pm.register(mod, name=spec)
        self.pm.check_pending()
        if self._filled:  # late registration: add its components to the live registry
            for kind in KINDS:
                hook = getattr(mod, f"register_{kind}", None)
                if hook is not None:
                    hook(register=self.registry.registrar(kind, spec))


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


def _allowlist() -> set[str] | None:
    raw = os.environ.get("SANDMLE_LOAD_PLUGINS")
    if raw is None:
        return None
    return {p.strip() for p in raw.split(",") if p.strip()}


def build_manager(load_entry_points: bool = True) -> PluginManager:
    """Create a manager with entry-point plugins and the built-ins registered.

    ``SANDMLE_LOAD_PLUGINS=a,b`` loads only the entry-point plugins (or distributions) named;
    an empty value loads none. Built-ins always load. A plugin that raises on import becomes a
    warning and a :class:`PluginLoadFailure`; the others still load.
    """
    pm = pluggy.PluginManager("sandmle")
    pm.add_hookspecs(hookspecs)
    manager = PluginManager(pm)
    if load_entry_points:
        allow = _allowlist()
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist_name = ep.dist.name if ep.dist is not None else ""
            if allow is not None and ep.name not in allow and dist_name not in allow:
                continue
            if pm.get_plugin(ep.name) is not None:
                continue
            try:
                plugin = ep.load()
                pm.register(plugin, name=ep.name)
                if ep.dist is not None:
                    manager.versions[ep.name] = ep.dist.version
            except Exception as exc:  # a broken plugin must not take the CLI down
                message = f"{type(exc).__name__}: {exc}"
                manager.failures.append(PluginLoadFailure(ep.name, message))
                warnings.warn(f"sandmle plugin {ep.name!r} failed to load: {message}", stacklevel=2)
    for modname in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(modname), name=modname)
    pm.check_pending()
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
