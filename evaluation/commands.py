"""``sandmle eval``, ``sandmle report`` and ``sandmle compare``."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click
from rich.console import Console

from sandmle.core.errors import SandmleError


def _has_results(path: Path) -> Path:
    if not (path / "results.jsonl").is_file():
        raise SandmleError(f"{path} has no results.jsonl (is it a 'sandmle eval' output directory?)")
    return path


@click.command("eval")
@click.argument("recipe")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Output directory (default: the recipe's output_dir); rerun on it to resume.")
@click.option("--max-episodes", type=click.IntRange(min=0), default=None,
              help="Stop after this many new episodes (0: only rebuild the report).")
@click.option("--backend", "backend_name", default=None,
              help="Evaluate this backend instead of the recipe's policies (e.g. transformers).")
@click.option("--backend-args", default=None,
              help='Its config as JSON, e.g. \'{"model": "runs/train_grpo_smollm2_cpu/train"}\' (a checkpoint).')
def eval_cmd(recipe: str, out_dir: Path | None, max_episodes: int | None, backend_name: str | None,
             backend_args: str | None) -> None:
    """Run (or resume) the recipe's evaluation study and write its report.

    RECIPE is a YAML file or the name of a shipped recipe (e.g. quickstart). Task sets made by a
    generator are generated (or their generation resumed, as ``sandmle run`` does) first.
    """
    from sandmle.core.recipe import output_dir_problem
    from sandmle.core.runner import prepare, print_plugins, write_run_metadata

    from .study import run_study

    console = Console()
    rec, manager = prepare(recipe)
    if backend_name is not None or backend_args is not None:
        _override_policy(rec, manager.registry, backend_name, backend_args)
    if out_dir is not None:
        problem = output_dir_problem(out_dir)
        if problem:
            raise SandmleError(f"--out: {problem}")
        rec.output_dir = out_dir
    print_plugins(manager, console)
    write_run_metadata(rec, manager)
    if any(ts.generator for ts in rec.tasks):
        # Always: a killed generation leaves some tasks behind, and the study must not shrink.
        from sandmle.generators.stage import run_generate_stage

        run_generate_stage(rec, manager.registry, console)
    run_study(rec, manager.registry, console, max_episodes=max_episodes)


def _override_policy(rec, registry, name: str | None, args_json: str | None) -> None:  # noqa: ANN001
    """Make ``--backend``/``--backend-args`` the study's only policy (validated like ``rollout``'s)."""
    from sandmle.core.arguments import parse_json_object, validate_args
    from sandmle.core.recipe import ComponentSpec, EvaluationSection

    name = name or rec.backend.name
    _, config = validate_args(registry, "backends", name, args_json, name_option="--backend",
                              args_option="--backend-args")
    spec = ComponentSpec(name=name, args=parse_json_object(args_json, "--backend-args"))
    spec._config = config  # as resolve() leaves it
    if rec.evaluation is None:
        rec.evaluation = EvaluationSection()
    rec.evaluation.policies = [spec]


@click.command("report")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the aggregates as JSON.")
def report_cmd(directory: Path, as_json: bool) -> None:
    """Rebuild report.md, report.html, summary.json, plots and the episode pages
    (episodes/<key>.html, linked from report.html) from DIRECTORY/results.jsonl."""
    from .report import build_report

    _has_results(directory)
    if as_json:
        build_report(directory)
        click.echo((directory / "summary.json").read_text(encoding="utf-8"))
        return
    console = Console()
    report = build_report(directory, console)
    console.print(f"report: {report} and {report.with_suffix('.html')} (episode pages in {directory / 'episodes'})")


@click.command("compare")
@click.argument("a", type=click.Path(path_type=Path, file_okay=False))
@click.argument("b", type=click.Path(path_type=Path, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
def compare_cmd(a: Path, b: Path, as_json: bool) -> None:
    """Two runs side by side: per group and metric, b - a with the combined standard error."""
    from .report import compare_dirs, compare_table

    diffs = compare_dirs(_has_results(a), _has_results(b))
    if as_json:
        click.echo(json.dumps([asdict(d) for d in diffs], indent=2))
        return
    if not diffs:
        raise SandmleError("the two runs share no (task set, scaffold, policy) group to compare")
    Console().print(compare_table(diffs, str(a), str(b)))
