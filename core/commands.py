"""The core's own CLI commands: plugins, list, recipe validate, run."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from .hookspecs import hookimpl
from .registry import KINDS, singular


def _console():
    from .cli import console

    return console


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(plugins_cmd)
    cli.add_command(list_cmd)
    cli.add_command(recipe_group)
    cli.add_command(run_cmd)


def _problems(manager: Any, registry: Any) -> dict[str, list[dict[str, Any]]]:
    failed = [{"name": f.name, "error": f.error} for f in manager.failures]
    clashes = [{"kind": kind, "name": name, "plugins": [r.plugin for r in rivals],
                "error": str(registry.clash_error(kind, name))}
               for kind, names in registry.clashes.items() for name, rivals in names.items()]
    return {k: v for k, v in (("failed", failed), ("clashes", clashes)) if v}


@click.command("plugins")
@click.option("--all", "show_all", is_flag=True, help="Include the built-in plugins.")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON, always one object: {plugins: [...], failed: [{name, error}], "
                   "clashes: [{kind, name, plugins, error}], blocked: [...]} (empty lists when all is well).")
@click.option("--hook", default=None, help="Only plugins implementing this hook.")
def plugins_cmd(show_all: bool, as_json: bool, hook: str | None) -> None:
    """List loaded plugins with the hooks they implement, their versions and components."""
    from .plugins import get_manager

    manager = get_manager()
    registry = manager.fill_registry()
    rows = [r for r in manager.plugins() if show_all or not r["builtin"]]
    if hook:
        rows = [r for r in rows if hook in r["hooks"]]
    for row in rows:
        row["components"] = {
            kind: sorted(i.name for i in registry.entries(kind) if i.plugin == row["name"])
            for kind in KINDS
        }
        row["components"] = {k: v for k, v in row["components"].items() if v}
    problems = _problems(manager, registry)
    if as_json:
        click.echo(json.dumps({"plugins": rows, "failed": problems.get("failed", []),
                               "clashes": problems.get("clashes", []), "blocked": list(manager.blocked)},
                              indent=2))
        return
    table = Table(title="sandmle plugins" + ("" if show_all else " (use --all for built-ins)"))
    # Plugin names are what users type into SANDMLE_BLOCK_PLUGINS: never cut them short.
    width = max((len(r["name"]) for r in rows), default=6)
    table.add_column("plugin", no_wrap=True, min_width=width)
    table.add_column("version", no_wrap=True)
    table.add_column("hooks", overflow="fold")
    table.add_column("components", overflow="fold")
    for row in rows:
        comps = "; ".join(f"{k}: {', '.join(v)}" for k, v in row["components"].items())
        hooks = ", ".join(h.removeprefix("register_") for h in row["hooks"])
        table.add_row(escape(row["name"]), row["version"] or "", hooks, escape(comps))
    _console().print(table)
    for f in problems.get("failed", []):
        _console().print(f"[yellow]plugin {escape(repr(f['name']))} {escape(f['error'])}[/]")
    for c in problems.get("clashes", []):
        _console().print(f"[yellow]name clash[/] {escape(c['error'])}")
    if manager.blocked:
        _console().print(f"[dim]blocked by SANDMLE_BLOCK_PLUGINS: {escape(', '.join(manager.blocked))}[/]")


class KindType(click.ParamType):
    """A component kind, plural or singular, with ``_``, ``-`` or a space: ``task-sources``,
    ``task_source`` and ``task sources`` all mean ``task_sources``."""

    name = "kind"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        kind = normalize_kind(str(value))
        if kind is None:
            self.fail(f"{value!r} is not a component kind; kinds: {', '.join(KINDS)}", param, ctx)
        return kind


def normalize_kind(text: str) -> str | None:
    """``"task-source"`` -> ``"task_sources"``; None when ``text`` names no kind."""
    key = text.strip().lower().replace("-", "_").replace(" ", "_")
    for kind in KINDS:
        if key in (kind, singular(kind).replace(" ", "_")):
            return kind
    return None


@click.command("list")
@click.argument("kind", type=KindType(), metavar="KIND")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON: name, plugin, description, extra and the full JSON schema of the "
                   "component's arguments (with $defs for nested models).")
def list_cmd(kind: str, as_json: bool) -> None:
    """List the registered components of one KIND (scaffolds, graders, task-sources, ...)."""
    from .plugins import get_registry

    registry = get_registry()
    infos = registry.entries(kind)
    clashing = registry.clashes.get(kind, {})
    if as_json:
        click.echo(json.dumps([
            {"name": i.name, "plugin": i.plugin, "qualified_name": i.qualified_name,
             "description": i.description, "config": i.config.model_json_schema(), "extra": i.extra,
             "clash": i.name in clashing}
            for i in infos
        ], indent=2))
        return
    table = Table(title=f"registered {kind}")
    table.add_column("name", no_wrap=True)
    table.add_column("plugin", no_wrap=True)
    for col in ("arguments", "description"):
        table.add_column(col, overflow="fold")
    for i in infos:
        args = ", ".join(i.config.model_fields)
        name = i.name if i.name not in clashing else f"{i.name} (clash: use {i.qualified_name})"
        table.add_row(escape(name), escape(i.plugin), args, escape(i.description))
    _console().print(table)
    for name in clashing:
        _console().print(f"[yellow]name clash[/] {escape(str(registry.clash_error(kind, name)))}")


@click.group("recipe")
def recipe_group() -> None:
    """Work with recipe files."""


@recipe_group.command("validate")
@click.argument("path")
@click.option("--for", "for_command", type=click.Choice(["run", "eval", "train"]), default=None,
              help="Also fail (exit 2) when this command would refuse the recipe, e.g. 'eval' "
                   "without an evaluation: section.")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON: {recipe, valid, problems: [{path, message}], plan, stages, output_dir, "
                   "commands: {run, eval, train: {ready, problem}}}; exit code as without --json.")
def validate_cmd(path: str, for_command: str | None, as_json: bool) -> None:
    """Check a recipe (a YAML file or a shipped recipe's name): structure, component names and
    their arguments, all reported in one run; print the plan and what each command would do
    with it (`run` needs a stage, `eval` an evaluation: section, `train` a train: section)."""
    from .errors import RecipeError
    from .runner import command_problems, prepare, print_plan

    try:
        recipe, _ = prepare(path)
    except RecipeError as err:
        if not as_json:
            raise
        click.echo(json.dumps({"recipe": str(path), "valid": False, "problems": [
            {"path": p, "message": m} for p, m in err.problems]}, indent=2))
        raise SystemExit(err.exit_code) from None
    commands = command_problems(recipe)
    refused = commands[for_command] if for_command else None
    if as_json:
        click.echo(json.dumps({
            "recipe": str(path), "valid": refused is None,
            "problems": [{"path": "", "message": f"sandmle {for_command}: {refused}"}] if refused else [],
            "plan": [{"where": where, "kind": singular(kind), "component": spec.label}
                     for where, kind, spec in recipe.components()],
            "stages": recipe.stages(), "output_dir": str(recipe.out),
            "commands": {c: {"ready": p is None, "problem": p} for c, p in commands.items()},
        }, indent=2))
        if refused:
            raise SystemExit(2)
        return
    if refused:
        raise RecipeError(str(path), [("", f"sandmle {for_command} would refuse it: {refused}")])
    console = _console()
    console.print(f"[green]recipe {escape(str(path))} is valid[/]")
    print_plan(recipe, console)
    for command, problem in commands.items():
        if problem is None:
            console.print(f"  sandmle {command}: [green]ready[/]")
        else:
            console.print(f"  sandmle {command}: [yellow]would refuse[/] ({escape(problem)})")


@click.command("run")
@click.argument("path")
def run_cmd(path: str) -> None:
    """Run every stage a recipe names (generate, train, evaluate).

    PATH is a YAML file or the name of a shipped recipe (e.g. quickstart)."""
    from .runner import prepare, run_recipe

    recipe, manager = prepare(path)
    run_recipe(recipe, manager, _console())
