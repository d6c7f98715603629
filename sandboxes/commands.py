"""``sandmle sandbox ...`` commands: run the hostile battery against a registered sandbox."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

from typing import Any

import click

from sandmle.core.errors import SandmleError


@click.group("sandbox")
def sandbox_group() -> None:
    """Sandboxes: conformance battery."""


def config_from_json(text: str | None, model: Any, name: str) -> Any:
    """``--config`` text as a validated config of sandbox ``name``; any fault is a user error
    naming the argument (bad JSON, not an object, unknown or invalid keys)."""
    from pydantic import ValidationError

    try:
        data = json.loads(text) if text else {}
    except ValueError as exc:
        raise SandmleError(f"--config is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SandmleError(f"--config must be a JSON object, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(config)'}: {e['msg']}" for e in exc.errors())
        valid = ", ".join(sorted(model.model_fields)) or "(none)"
        raise SandmleError(f"--config for sandbox {name!r}: {problems} (valid keys: {valid})") from None


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

    registry = get_registry()
    info = registry.get("sandboxes", name)
    sandbox = registry.create("sandboxes", name, config_from_json(config_json, info.config, name))
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
