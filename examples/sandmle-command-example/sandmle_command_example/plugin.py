"""Command ``sandmle export-csv RUN_DIR OUT``: a study's results.jsonl as one CSV row per
episode, with the reward's parts as ``reward_<milestone>`` columns: for spreadsheets and pandas."""

from __future__ import annotations

import json
from pathlib import Path

import click

from sandmle.core import SandmleError, hookimpl


@click.command("export-csv")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--ok-only", is_flag=True, help="Leave out episodes that failed.")
def export_csv(run_dir: Path, out: Path, ok_only: bool) -> None:
    """Write RUN_DIR/results.jsonl to OUT as CSV, one row per episode."""
    import pandas as pd  # imported when the command runs, not when `sandmle --help` starts

    results = run_dir / "results.jsonl"
    if not results.is_file():  # a SandmleError is printed as one line, exit code 1, no traceback
        raise SandmleError(f"{run_dir} has no results.jsonl (is it a `sandmle eval` output folder?)")
    rows = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines() if line.strip()]
    if ok_only:
        rows = [r for r in rows if r.get("status") == "ok"]
    for row in rows:
        for name, value in (row.pop("reward_parts", None) or {}).items():
            row[f"reward_{name}"] = value
        row.pop("kept_files", None)
    pd.DataFrame(rows).to_csv(out, index=False)
    click.echo(f"wrote {len(rows)} episodes to {out}")


@hookimpl
def register_commands(cli):
    cli.add_command(export_csv)
