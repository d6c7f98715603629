"""``sandmle generate`` and ``sandmle tasks show``."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

# .show (which reads the seed catalogue) and rich.progress are imported by the commands that use
# them: every `sandmle` invocation imports this module to build the command line.


CALIBRATE_FROM = 20  # fewer tasks give medal rates too coarse to calibrate anything


def _console() -> Console:
    from sandmle.core.cli import console

    return console


@dataclass
class GenerationOutcome:
    """One candidate's fate as the CLI reports it, whatever the generator yielded.

    The generator contract (docs/plugins/generators.md) asks only for a :class:`Task` or an
    object with ``accepted`` (and ``reason`` when rejected); the built-in generators yield
    richer records. :func:`outcome_record` maps both onto these fields, with neutral values for
    what a plugin does not say."""

    task_id: str
    accepted: bool
    reason: str | None = None
    path: str | None = None
    resumed: bool = False
    seconds: float = 0.0
    family: str = ""
    modality: str = ""
    metric: str = ""
    n_train: int = 0
    difficulty: dict[str, Any] = field(default_factory=dict)
    detail: str = ""


def outcome_record(outcome: Any, existing: set[str] | frozenset[str] = frozenset()) -> Any:
    """``outcome`` itself when it carries every field the CLI reads (the built-in generators'
    ``Outcome``), else a :class:`GenerationOutcome` made from it. ``existing``: task folders
    that were there before this run (a plugin's re-yielded task is then counted as resumed).

    Raises SandmleError for something that is neither a Task nor carries ``accepted``."""
    from sandmle.core.errors import SandmleError
    from sandmle.core.task import Task

    if all(hasattr(outcome, f) for f in GenerationOutcome.__dataclass_fields__):
        return outcome
    if isinstance(outcome, Task):
        path = str(outcome.root)
        n_train = outcome.provenance.get("n_train", 0) if isinstance(outcome.provenance, dict) else 0
        return GenerationOutcome(
            task_id=outcome.id, accepted=True, path=path, resumed=os.path.abspath(path) in existing,
            modality=outcome.modality, metric=outcome.metric,
            n_train=n_train if isinstance(n_train, int) else 0)
    accepted = getattr(outcome, "accepted", None)
    if not isinstance(accepted, bool):
        raise SandmleError(
            f"the generator yielded a {type(outcome).__name__}, which is neither a Task nor an outcome with a "
            "boolean 'accepted' (see docs/plugins/generators.md, 'The contract')")
    path = getattr(outcome, "path", None)
    path = str(path) if path is not None else None
    reason = getattr(outcome, "reason", None)
    return GenerationOutcome(
        task_id=str(getattr(outcome, "task_id", None) or (Path(path).name if path else "?")),
        accepted=accepted, reason=None if accepted else str(reason or "rejected (no reason given)"),
        path=path, resumed=bool(path) and os.path.abspath(path) in existing,
        seconds=float(getattr(outcome, "seconds", 0.0) or 0.0))


def outcome_json(outcome: Any) -> dict[str, Any]:
    """A JSON-ready mapping of a (normalised) outcome."""
    data = dataclasses.asdict(outcome) if dataclasses.is_dataclass(outcome) else dict(vars(outcome))
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in data.items()}


def _existing_task_dirs(out: Path) -> set[str]:
    if not out.is_dir():
        return set()
    return {os.path.abspath(p.parent) for p in out.glob("*/task.yaml")}


def run_generation(generator: Any, out: Path, n: int, seed: int, seeds: list[str] | None,
                   console: Console) -> list[Any]:
    """Drive ``generator`` with a progress bar; return every outcome (resumed ones included),
    each with the fields of :class:`GenerationOutcome` (see :func:`outcome_record`)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    existing = _existing_task_dirs(Path(out))
    outcomes: list[Any] = []
    with Progress(TextColumn("[bold]generate"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[last]}"), TimeElapsedColumn(), console=console,
                  transient=False) as bar:
        job = bar.add_task("tasks", total=n, last="")
        for raw in generator.generate(out, n, seed=seed, seeds=seeds):
            o = outcome_record(raw, existing)
            outcomes.append(o)
            if o.accepted:
                bar.advance(job)
            bar.update(job, last=escape(f"{'ok ' if o.accepted else 'rej'} {o.task_id} {o.reason or ''}"))
    return outcomes


def summary_table(outcomes: list[Any], wall_s: float) -> Table:
    """Accepted/rejected by reason, modality and metric mix, rows and time per task."""
    from .show import difficulty_summary

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
    for key in ("family", "modality", "metric"):
        mix = Counter(getattr(o, key) for o in ok if getattr(o, key))
        if mix:
            table.add_row(f"{key} mix", ", ".join(f"{k} {v}" for k, v in sorted(mix.items())))
    if any(o.n_train for o in ok):
        table.add_row("mean training rows", f"{sum(o.n_train for o in ok) / len(ok):.0f}")
    for what, value in difficulty_summary([o.difficulty for o in ok]):
        table.add_row(what, value)
    return table


@click.command("generate")
@click.option("--n", "n", type=click.IntRange(min=1), default=100, show_default=True, help="verified tasks wanted")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="task set folder")
@click.option("--seeds", default=None, help="comma-separated seed names (default: all)")
@click.option("--generator", "gen_name", default="procedural", show_default=True,
              help="a registered generator (`sandmle list generators`), built-in or a plugin's")
@click.option("--args", "gen_args", default=None,
              help="the generator's arguments as a JSON object, e.g. '{\"noise\": 0.5}'")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="candidates verified at once, for generators with a 'workers' argument "
                   "(procedural, multiagent; default: theirs, 2)")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the outcomes as JSON lines")
@click.option("--calibrate/--no-calibrate", default=None,
              help="run the baseline policy in react, aide and mledojo on the set and print its medal rates "
                   f"(default: on for sets of {CALIBRATE_FROM}+ tasks)")
def generate_cmd(n: int, out: Path, seeds: str | None, gen_name: str, gen_args: str | None,
                 workers: int | None, seed: int, as_json: bool, calibrate: bool | None) -> None:
    """Generate N verified micro-scale tasks into OUT (resumable: rerun to continue)."""
    from sandmle.core.arguments import ArgumentError, build_component, lookup, parse_json_object
    from sandmle.core.errors import SandmleError
    from sandmle.core.plugins import get_registry
    from sandmle.core.recipe import output_dir_problem

    from .resume import scan_output

    problem = output_dir_problem(out)
    if problem:
        raise SandmleError(f"--out: {problem}")
    registry = get_registry()
    args = parse_json_object(gen_args, "--args")
    if workers is not None:
        info = lookup(registry, "generators", gen_name, "--generator")
        if "workers" not in info.config.model_fields:
            raise ArgumentError("--workers", [("", f"generator {gen_name!r} takes no 'workers' argument "
                                                   f"(its arguments: {', '.join(info.config.model_fields) or 'none'})")])
        args.setdefault("workers", workers)
    generator = build_component(registry, "generators", gen_name, args, name_option="--generator",
                                args_option="--args")
    console = _console()
    note = scan_output(out).describe() if out.is_dir() else None
    if note:
        console.print(f"[yellow]{escape(note)}[/]")
    t0 = time.perf_counter()
    outcomes = run_generation(generator, out, n, seed, seeds.split(",") if seeds else None, console)
    if as_json:
        for o in outcomes:
            click.echo(json.dumps(outcome_json(o)))
    else:
        console.print(summary_table(outcomes, time.perf_counter() - t0))
    accepted = sum(o.accepted for o in outcomes)
    if calibrate or (calibrate is None and accepted >= CALIBRATE_FROM):
        from .baseline_calibration import calibrate as run_calibration, calibration_table

        result = run_calibration(out, console)
        if as_json:
            click.echo(json.dumps({"calibration": result}))
        else:
            console.print(calibration_table(result))


@click.command("show")
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--plot", type=click.Path(path_type=Path), default=None, help="write a PNG of the mix")
@click.option("--json", "as_json", is_flag=True)
def show_cmd(root: Path, plot: Path | None, as_json: bool) -> None:
    """Summarise the task set in ROOT (mix, sizes, then per task: files, target format and
    difficulty figures), or everything about ROOT when it is one task folder."""
    from .show import family_mix, per_task_table, task_detail, task_set_rows

    rows = task_set_rows(root)
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    console = _console()
    if (root / "task.yaml").is_file():
        if not rows:
            raise click.ClickException(f"{root}/task.yaml is not a readable task (id, modality and metric needed)")
        console.print(task_detail(rows[0]))
        return
    table = Table(title=f"{escape(str(root))}: {len(rows)} tasks")
    for col in ("modality", "metric", "count", "mean train rows"):
        table.add_column(col)
    groups = Counter((r["modality"], r["metric"]) for r in rows)
    for (mod, met), count in sorted(groups.items()):
        sizes = [r["n_train"] for r in rows if (r["modality"], r["metric"]) == (mod, met) and r["n_train"]]
        table.add_row(mod, met, str(count), f"{sum(sizes) / len(sizes):.0f}" if sizes else "-")
    console.print(table)
    console.print(f"family mix: {family_mix(rows)}")
    console.print(per_task_table(rows, "per task: files, target format, difficulty"))
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
