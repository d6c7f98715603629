"""Runs the stages a recipe names: generate -> train -> evaluate."""

from __future__ import annotations

import importlib
import json
import platform
import time
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .errors import RecipeError, SandmleError
from .plugins import PluginManager, get_manager
from .recipe import (
    Recipe, TasksSection, component_name_problems, parse_recipe, read_recipe_file, resolve,
)
from .registry import Registry, singular
from .task import Task


def shipped_recipe(name_or_path: str | Path) -> Path:
    """A recipe path; a bare name (``quickstart``) resolves to a recipe shipped with sandmle."""
    text = str(name_or_path)
    path = Path(text)
    if path.exists() or path.suffix in (".yaml", ".yml") or "/" in text:
        return path
    shipped = resources.files("sandmle.recipes") / f"{text}.yaml"
    if shipped.is_file():
        return Path(str(shipped))
    names = sorted(p.name[:-5] for p in resources.files("sandmle.recipes").iterdir()
                   if p.name.endswith(".yaml"))
    raise SandmleError(f"no recipe file {text!r} and no shipped recipe of that name "
                       f"(shipped: {', '.join(names)})")


def prepare(path: str | Path) -> tuple[Recipe, PluginManager]:
    """Load a recipe (a file, or the name of a shipped one), register its local plugins, and
    validate every component against the registry.

    Every problem is reported at once: plugins that fail to load, the structure (unknown keys,
    bad values) and unknown component names, even when the structure is wrong."""
    path = shipped_recipe(path)
    data = read_recipe_file(path)
    manager = get_manager()
    manager.fill_registry()
    problems: list[tuple[str, str]] = []
    plugins = data.get("plugins") if isinstance(data, dict) else None
    for i, spec in enumerate(plugins if isinstance(plugins, list) else []):
        if not isinstance(spec, str):
            continue  # the structural check reports it
        try:
            manager.load_module(spec)
        except Exception as exc:  # noqa: BLE001 - reported as a recipe problem
            problems.append((f"plugins[{i}]", f"cannot load plugin {spec!r}: {type(exc).__name__}: {exc}"))
    try:
        recipe = parse_recipe(data, str(path))
    except RecipeError as err:
        problems += err.problems
        seen = {p for p, _ in problems}
        problems += [p for p in component_name_problems(data, manager.registry) if p[0] not in seen]
        raise RecipeError(str(path), problems) from None
    try:
        resolve(recipe, manager.registry, str(path))
    except RecipeError as err:
        problems += err.problems
    if problems:
        raise RecipeError(str(path), problems)
    return recipe, manager


#: What each recipe-reading command needs beyond a valid recipe.
COMMAND_NEEDS = {
    "run": "at least one stage: a task set with a generator, a train: section or an evaluation: section",
    "eval": "an evaluation: section (or --backend) and at least one task set",
    "train": "a train: section (or top-level trainer:) and at least one task set",
}


def command_problems(recipe: Recipe) -> dict[str, str | None]:
    """Per command (``run``, ``eval``, ``train``): why it would refuse this valid recipe, or
    None when it would start."""
    return {
        "run": None if recipe.stages() else "nothing to run: " + COMMAND_NEEDS["run"],
        "eval": ("no evaluation: section (sandmle eval needs one, or --backend)" if recipe.evaluation is None
                 else "no tasks: to evaluate on" if not recipe.tasks else None),
        "train": ("no train: section (or top-level trainer:)" if recipe.train is None
                  else "no tasks: to train on" if not recipe.tasks else None),
    }


def print_plan(recipe: Recipe, console: Console) -> None:
    """Show the validated recipe: components with their args, and the stages to run."""
    table = Table(title=f"recipe {escape(recipe.name)}: plan", show_lines=False)
    table.add_column("where")
    table.add_column("kind")
    table.add_column("component")
    for path, kind, spec in recipe.components():
        table.add_row(path, singular(kind), escape(spec.label))
    console.print(table)
    stages = recipe.stages() or ["(nothing to run: add tasks.generator, train or evaluation)"]
    console.print(f"stages: [bold]{' -> '.join(stages)}[/]   output: {escape(str(recipe.out))}")


def task_set_dir(recipe: Recipe, ts: TasksSection) -> Path:
    """Where a generated task set lives."""
    return ts.dir or recipe.out / "tasks" / ts.name


def load_task_set(recipe: Recipe, ts: TasksSection, registry: Registry) -> list[Task]:
    """The tasks of one task set, from its source or from where its generator wrote them."""
    if ts.source is not None:
        source = ts.source.build(registry, "task_sources")
    else:
        source = registry.create("task_sources", "directory", {"path": task_set_dir(recipe, ts)})
    tasks = source.tasks()
    return tasks[: ts.limit] if ts.limit else tasks


def _stage_impl(module: str, func: str) -> Callable[..., Any] | None:
    try:
        return getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError):
        return None


def write_run_metadata(recipe: Recipe, manager: PluginManager) -> Path:
    """Record the resolved recipe and loaded plugin versions next to the run's outputs."""
    out = recipe.out
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "recipe": recipe.model_dump(mode="json"),
        "resolved": {path: spec.config.model_dump(mode="json") for path, _, spec in recipe.components()},
        "plugins": [{"name": r["name"], "version": r["version"]} for r in manager.plugins()],
        "python": platform.python_version(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    path = out / "run.json"
    path.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return path


def print_plugins(manager: PluginManager, console: Console) -> None:
    """One line naming every loaded plugin and its version."""
    rows = manager.plugins()
    listed = ", ".join(f"{r['name']} {r['version'] or ''}".strip() for r in rows)
    failed = sorted({f.name for f in manager.failures})
    note = f"; failed (see above): {', '.join(failed)}" if failed else ""
    console.print(f"[dim]plugins ({len(rows)}): {escape(listed)}{escape(note)}[/]")


def run_recipe(recipe: Recipe, manager: PluginManager, console: Console) -> None:
    """Run each stage of the recipe in order; a stage no plugin provides yet says so honestly."""
    print_plugins(manager, console)
    print_plan(recipe, console)
    write_run_metadata(recipe, manager)
    registry = manager.registry
    for stage in recipe.stages():
        console.rule(f"[bold]{stage}")
        if stage == "generate":
            impl = _stage_impl("sandmle.generators.stage", "run_generate_stage")
        elif stage == "train":
            impl = _stage_impl("sandmle.training.stage", "run_train_stage")
        else:
            impl = _stage_impl("sandmle.evaluation.study", "run_evaluate_stage")
        if impl is None:
            console.print(f"[yellow]stage {stage!r} is not available yet in this version of sandmle[/]")
            continue
        impl(recipe, registry, console)
