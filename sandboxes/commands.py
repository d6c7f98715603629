"""``sandmle sandbox ...`` commands: run the hostile battery against a registered sandbox."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

import click


@click.group("sandbox")
def sandbox_group() -> None:
    """Sandboxes: conformance battery."""


@sandbox_group.command("check")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="machine-readable results")
@click.option("--config", "config_json", default=None, help="sandbox config as a JSON object")
def check_cmd(name: str, as_json: bool, config_json: str | None) -> None:
    """Run the hostile-code battery against sandbox NAME (exit 1 when a check fails)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from sandmle.core.plugins import get_registry
    from sandmle.core.terminal import printable
    from sandmle.core.testing import run_checks

    from .conformance import make_canary_task

    from sandmle.core.arguments import build_component

    sandbox = build_component(get_registry(), "sandboxes", name, config_json,
                              name_option="sandbox NAME", args_option="--config")
    with tempfile.TemporaryDirectory(prefix="sandmle-canary-") as tmp:
        task = make_canary_task(Path(tmp))
        try:
            results = run_checks("sandboxes", sandbox, task=task)
        finally:
            asyncio.run(sandbox.shutdown())
    failed = [r for r in results if not r.passed]
    if as_json:
        click.echo(json.dumps([{"check": r.name, "passed": r.passed, "detail": r.detail,
                                "wall_s": round(r.wall_s, 3)} for r in results], indent=2))
    else:
        table = Table(title=f"sandbox {name!r}: {len(results) - len(failed)}/{len(results)} checks passed")
        for col in ("check", "passed", "detail", "time"):
            table.add_column(col)
        for r in results:
            # A check's detail may quote agent output: no markup, no terminal control codes.
            table.add_row(r.name, "[green]yes[/]" if r.passed else "[red]NO[/]", Text(printable(r.detail[:120])),
                          f"{r.wall_s:.2f}s")
        Console().print(table)
    if failed:
        raise SystemExit(1)
