"""The core's own CLI commands: plugins, list, recipe validate, run."""

from __future__ import annotations

import json

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


@click.command("plugins")
@click.option("--all", "show_all", is_flag=True, help="Include the built-in plugins.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
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
            kind: sorted(n for n, info in registry.components[kind].items() if info.plugin == row["name"])
            for kind in KINDS
        }
        row["components"] = {k: v for k, v in row["components"].items() if v}
    failures = [{"name": f.name, "error": f.error} for f in manager.failures]
    if as_json:
        click.echo(json.dumps(rows if not failures else {"plugins": rows, "failed": failures}, indent=2))
        return
    table = Table(title="sandmle plugins" + ("" if show_all else " (use --all for built-ins)"))
    for col in ("plugin", "version", "hooks", "components"):
        table.add_column(col)
    for row in rows:
        comps = "; ".join(f"{k}: {', '.join(v)}" for k, v in row["components"].items())
        hooks = ", ".join(h.removeprefix("register_") for h in row["hooks"])
        table.add_row(row["name"], row["version"] or "", hooks, comps)
    _console().print(table)
    for f in failures:
        _console().print(f"[yellow]failed to load[/] {escape(f['name'])}: {escape(f['error'])}")


@click.command("list")
@click.argument("kind", type=click.Choice(KINDS + tuple(singular(k).replace(" ", "_") for k in KINDS)))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_cmd(kind: str, as_json: bool) -> None:
    """List the registered components of one KIND (e.g. scaffolds)."""
    from .plugins import get_registry

    kind = kind if kind in KINDS else next(k for k in KINDS if singular(k).replace(" ", "_") == kind)
    registry = get_registry()
    infos = [registry.components[kind][n] for n in registry.names(kind)]
    if as_json:
        click.echo(json.dumps([
            {"name": i.name, "plugin": i.plugin, "description": i.description,
             "config": i.config.model_json_schema().get("properties", {}), "extra": i.extra}
            for i in infos
        ], indent=2))
        return
    table = Table(title=f"registered {kind}")
    for col in ("name", "plugin", "arguments", "description"):
        table.add_column(col)
    for i in infos:
        args = ", ".join(i.config.model_fields)
        table.add_row(i.name, i.plugin, args, escape(i.description))
    _console().print(table)


@click.group("recipe")
def recipe_group() -> None:
    """Work with recipe files."""


@recipe_group.command("validate")
@click.argument("path")
def validate_cmd(path: str) -> None:
    """Check a recipe (a YAML file or a shipped recipe's name): structure, component names and
    their arguments; print the plan."""
    from .runner import prepare

    recipe, _ = prepare(path)
    _console().print(f"[green]recipe {escape(str(path))} is valid[/]")
    from .runner import print_plan

    print_plan(recipe, _console())


@click.command("run")
@click.argument("path")
def run_cmd(path: str) -> None:
    """Run every stage a recipe names (generate, train, evaluate).

    PATH is a YAML file or the name of a shipped recipe (e.g. quickstart)."""
    from .runner import prepare, run_recipe

    recipe, manager = prepare(path)
    run_recipe(recipe, manager, _console())
