"""Name -> factory registry for every component kind, filled through the plugin hooks."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from pydantic import BaseModel

from .errors import DuplicateComponentError, MissingDependencyError, UnknownComponentError

#: Every component kind, in the order ``sandmle plugins`` and the docs list them.
KINDS: tuple[str, ...] = (
    "generators",
    "scaffolds",
    "graders",
    "rewards",
    "trainers",
    "sandboxes",
    "backends",
    "task_sources",
    "executors",
)


def singular(kind: str) -> str:
    """``"sandboxes"`` -> ``"sandbox"``, ``"task_sources"`` -> ``"task source"`` (for messages)."""
    word = kind[:-2] if kind.endswith("xes") else kind.rstrip("s")
    return word.replace("_", " ")


class NoConfig(BaseModel, extra="forbid"):
    """Config model for components that take no arguments."""


def _resolve_config(ref: type[BaseModel] | str) -> type[BaseModel]:
    if not isinstance(ref, str):
        return ref
    module, _, attr = ref.partition(":")
    if not attr:
        raise ValueError(f"a config given by name must read 'module:Class', got {ref!r}")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class ComponentInfo:
    """One registered component: what it is called, who registered it, how to build it.

    ``config_ref`` is the config model, or ``"module:Class"`` naming it: a plugin whose config
    lives next to heavy code registers it by name, so the CLI imports that module only when a
    command needs the component's arguments (``sandmle --help`` stays fast)."""

    kind: str
    name: str
    plugin: str
    factory: Callable[[Any], Any]
    config_ref: type[BaseModel] | str = NoConfig
    description: str = ""
    extra: str | None = None

    @property
    def config(self) -> type[BaseModel]:
        """The component's config model (imported on first use when registered by name)."""
        cached = self.__dict__.get("_config")
        if cached is None:
            cached = _resolve_config(self.config_ref)
            object.__setattr__(self, "_config", cached)
        return cached

    @property
    def qualified_name(self) -> str:
        return f"{self.plugin}/{self.name}"

    def build(self, args: dict[str, Any] | BaseModel | None = None) -> Any:
        """Validate ``args`` against the component's config model and call its factory."""
        cfg = args if isinstance(args, BaseModel) else self.config.model_validate(args or {})
        try:
            return self.factory(cfg)
        except ModuleNotFoundError as exc:  # deferred heavy import failed
            raise MissingDependencyError(exc.name or str(exc), self.extra, self.qualified_name) from exc


@dataclass
class Registry:
    """All registered components, keyed by kind then name."""

    components: dict[str, dict[str, ComponentInfo]] = field(
        default_factory=lambda: {kind: {} for kind in KINDS}
    )
    #: kind -> name -> every entry registered under that name by different plugins.
    clashes: dict[str, dict[str, list[ComponentInfo]]] = field(default_factory=dict)

    def add(self, info: ComponentInfo) -> None:
        """Register ``info``. A name another plugin already took becomes a *clash*: both entries
        are kept, the bare name refuses to resolve (naming the fix) and the qualified names
        ``plugin/name`` still work, so the clash only stops commands that use that name."""
        if info.kind not in self.components:
            raise ValueError(f"unknown component kind {info.kind!r}; kinds: {', '.join(KINDS)}")
        taken = self.components[info.kind].get(info.name)
        if taken is None:
            self.components[info.kind][info.name] = info
            return
        if taken.plugin == info.plugin:
            raise ValueError(f"plugin {info.plugin!r} registers {singular(info.kind)} {info.name!r} twice")
        rivals = self.clashes.setdefault(info.kind, {}).setdefault(info.name, [taken])
        rivals.append(info)

    def clash_error(self, kind: str, name: str) -> DuplicateComponentError:
        """The error for a bare ``name`` that several plugins registered, naming every fix."""
        rivals = self.clashes[kind][name]
        plugins = [r.plugin for r in rivals]
        qualified = " or ".join(repr(r.qualified_name) for r in rivals)
        return DuplicateComponentError(
            f"{singular(kind)} {name!r} is registered by several plugins: "
            f"{', '.join(repr(p) for p in plugins)}. Name the one you mean ({qualified}), or "
            f"disable the other with SANDMLE_BLOCK_PLUGINS={plugins[-1]} (or uninstall it)"
        )

    def registrar(self, kind: str, plugin: str) -> Callable[..., None]:
        """The ``register`` callback handed to one plugin's ``register_<kind>`` hook."""

        def register(
            name: str,
            factory: Callable[[Any], Any],
            *,
            config: type[BaseModel] | str | None = None,
            description: str = "",
            extra: str | None = None,
        ) -> None:
            if "/" in name:
                raise ValueError(f"component names may not contain '/': {name!r}")
            doc = description or (factory.__doc__ or "").strip().split("\n")[0]
            self.add(ComponentInfo(kind, name, plugin, factory, config or NoConfig, doc, extra))

        return register

    def names(self, kind: str) -> list[str]:
        return sorted(self.components[kind])

    def entries(self, kind: str) -> list[ComponentInfo]:
        """Every registered component of ``kind``, clashing ones included, sorted by name."""
        infos = [i for n, i in self.components[kind].items() if n not in self.clashes.get(kind, {})]
        infos += [i for rivals in self.clashes.get(kind, {}).values() for i in rivals]
        return sorted(infos, key=lambda i: (i.name, i.plugin))

    def get(self, kind: str, name: str) -> ComponentInfo:
        """Look a component up by ``name`` or qualified ``plugin/name``."""
        if kind not in self.components:
            raise ValueError(f"unknown component kind {kind!r}; kinds: {', '.join(KINDS)}")
        plugin, _, short = name.rpartition("/")
        rivals = self.clashes.get(kind, {}).get(short)
        if rivals is not None:
            if not plugin:
                raise self.clash_error(kind, short)
            info = next((r for r in rivals if r.plugin == plugin), None)
        else:
            info = self.components[kind].get(short)
        if info is None or (plugin and info.plugin != plugin):
            raise UnknownComponentError(kind, name, self.names(kind))
        return info

    def create(self, kind: str, name: str, args: dict[str, Any] | BaseModel | None = None) -> Any:
        """Build component ``name`` of ``kind`` with validated ``args``."""
        return self.get(kind, name).build(args)


def require(module: str, extra: str | None = None, component: str = "") -> Any:
    """Import ``module`` or raise a :class:`MissingDependencyError` naming the pip extra."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise MissingDependencyError(module.split(".")[0], extra, component) from exc
