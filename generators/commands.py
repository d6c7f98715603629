"""``sandmle generate`` and ``sandmle tasks show``."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .procedural import Outcome


def _console() -> Console:
    from sandmle.core.cli import console

    return console


def run_generation(generator: Any, out: Path, n: int, seed: int, seeds: list[str] | None,
                   console: Console) -> list[Outcome]:
    """Drive ``generator`` with a progress bar; return every outcome (resumed ones included)."""
    outcomes: list[Outcome] = []
    with Progress(TextColumn("[bold]generate"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[last]}"), TimeElapsedColumn(), console=console,
                  transient=False) as bar:
        job = bar.add_task("tasks", total=n, last="")
        for o in generator.generate(out, n, seed=seed, seeds=seeds):
            outcomes.append(o)
            if o.accepted:
                bar.advance(job)
            bar.update(job, last=f"{'ok ' if o.accepted else 'rej'} {o.task_id} {o.reason or ''}")
    return outcomes


def summary_table(outcomes: list[Outcome], wall_s: float) -> Table:
    """Accepted/rejected by reason, modality and metric mix, rows and time per task."""
    ok = [o for o in outcomes if o.accepted]
    fresh = [o for o in outcomes if not o.resumed]
    table = Table(title="generation summary")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("accepted (resumed)", f"{len(ok)} ({sum(o.resumed for o in ok)})")
    for reason, count in Counter(o.reason for o in outcomes if not o.accepted).most_common():
        table.add_row(f"rejected: {reason}", str(count))
    if fresh:
        table.add_row("acceptance rate (this run)", f"{sum(o.accepted for o in fresh) / len(fresh):.0%}")
        table.add_row("mean seconds per candidate", f"{sum(o.seconds for o in fresh) / len(fresh):.2f}")
        table.add_row("verified tasks per minute", f"{60 * sum(o.accepted for o in fresh) / max(wall_s, 1e-9):.1f}")
    for key in ("modality", "metric"):
        mix = Counter(getattr(o, key) for o in ok)
        table.add_row(f"{key} mix", ", ".join(f"{k} {v}" for k, v in sorted(mix.items())))
    if ok:
        table.add_row("mean training rows", f"{sum(o.n_train for o in ok) / len(ok):.0f}")
    return table


@click.command("generate")
@click.option("--n", "n", type=click.IntRange(min=1), default=100, show_default=True, help="verified tasks wanted")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="task set folder")
@click.option("--seeds", default=None, help="comma-separated seed names (default: all)")
@click.option("--generator", "gen_name", default="procedural", show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the outcomes as JSON lines")
def generate_cmd(n: int, out: Path, seeds: str | None, gen_name: str, workers: int, seed: int,
                 as_json: bool) -> None:
    """Generate N verified micro-scale tasks into OUT (resumable: rerun to continue)."""
    from sandmle.core.plugins import get_registry

    from sandmle.core.errors import SandmleError
    from sandmle.core.recipe import output_dir_problem

    from .resume import scan_output

    problem = output_dir_problem(out)
    if problem:
        raise SandmleError(f"--out: {problem}")
    console = _console()
    note = scan_output(out).describe() if out.is_dir() else None
    if note:
        console.print(f"[yellow]{escape(note)}[/]")
    args: dict[str, Any] = {"workers": workers}
    generator = get_registry().create("generators", gen_name, args)
    t0 = time.perf_counter()
    outcomes = run_generation(generator, out, n, seed, seeds.split(",") if seeds else None, console)
    if as_json:
        for o in outcomes:
            click.echo(json.dumps(o.__dict__))
    else:
        console.print(summary_table(outcomes, time.perf_counter() - t0))


def task_set_rows(root: Path) -> list[dict[str, Any]]:
    """One row per task folder under ``root`` (read from task.yaml)."""
    rows = []
    for meta_path in sorted(root.glob("*/task.yaml")):
        try:
            meta = yaml.safe_load(meta_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            meta = None
        if not isinstance(meta, dict) or not {"id", "modality", "metric"} <= set(meta):
            continue  # not a readable task (generate moves such folders aside)
        prov = meta.get("provenance") if isinstance(meta.get("provenance"), dict) else {}
        rows.append({"id": meta["id"], "modality": meta["modality"], "metric": meta["metric"],
                     "task_type": meta.get("task_type"), "n_train": prov.get("n_train"),
                     "seed": prov.get("seed_task"), "thresholds": meta.get("thresholds")})
    return rows


@click.command("show")
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--plot", type=click.Path(path_type=Path), default=None, help="write a PNG of the mix")
@click.option("--json", "as_json", is_flag=True)
def show_cmd(root: Path, plot: Path | None, as_json: bool) -> None:
    """Summarise the task set in ROOT (modality/metric mix, sizes)."""
    rows = task_set_rows(root)
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    console = _console()
    table = Table(title=f"{escape(str(root))}: {len(rows)} tasks")
    for col in ("modality", "metric", "count", "mean train rows"):
        table.add_column(col)
    groups = Counter((r["modality"], r["metric"]) for r in rows)
    for (mod, met), count in sorted(groups.items()):
        sizes = [r["n_train"] for r in rows if (r["modality"], r["metric"]) == (mod, met) and r["n_train"]]
        table.add_row(mod, met, str(count), f"{sum(sizes) / len(sizes):.0f}" if sizes else "-")
    console.print(table)
    if plot is not None:
        write_mix_plot(rows, plot)
        console.print(f"plot written to {escape(str(plot))}")


def write_mix_plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Bar charts of the modality and metric mix."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("modality", "metric")):
        mix = Counter(r[key] for r in rows)
        ax.bar(list(mix), list(mix.values()))
        ax.set_title(f"{key} mix ({len(rows)} tasks)")
        ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
