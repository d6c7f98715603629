"""``sandmle grade TASK_DIR SUBMISSION.csv`` and ``sandmle tasks export DIR OUT``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from sandmle.core.arguments import FiniteFloatRange, build_component, parse_json_object
from sandmle.core.errors import TaskError
from sandmle.core.plugins import get_registry
from sandmle.core.records import ExecResult, Trajectory, Turn
from sandmle.core.task import PUBLIC, Task, load_task
from sandmle.core.terminal import printable


def _console():
    from sandmle.core.cli import console

    return console


def load_any_task(path: Path) -> Task:
    """A task folder in sandmle's format, or one from SandMLE's release."""
    from .sources import load_release_task

    if (path / "task.yaml").is_file():
        return load_task(path)
    if (path / PUBLIC / "evaluator.py").is_file():
        return load_release_task(path)
    raise TaskError(f"{path} is not a task folder (no task.yaml and no {PUBLIC}/evaluator.py)")


# Exit codes of ``sandmle grade`` (documented in its --help and the README).
EXIT_VALID, EXIT_ERROR, EXIT_USAGE, EXIT_INVALID_SUBMISSION = 0, 1, 2, 3


@click.command("grade", epilog="Exit status: 0 valid submission, 3 invalid submission (the reason is "
                               "printed; --json still prints the grade), 2 usage error (bad option, not a "
                               "task folder, unknown grader/reward), 1 any other error.")
@click.argument("task_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.argument("submission", type=click.Path(path_type=Path))
@click.option("--grader", "grader_name", default="default", show_default=True,
              help="Registered grader to use (see `sandmle list graders`).")
@click.option("--grader-args", default=None, help="Grader config as JSON.")
@click.option("--reward", "reward_name", default="milestone", show_default=True,
              help="Registered reward for the breakdown (see `sandmle list rewards`).")
@click.option("--reward-args", default=None, help="Reward config as JSON.")
@click.option("--preset", type=click.Choice(["sandmle-code", "sandmle-paper", "sparse"]), default=None,
              help="Preset of the milestone reward (default sandmle-code).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (grade + reward).")
@click.option("--evaluator-timeout", "evaluator_timeout_s", type=FiniteFloatRange(min=0, min_open=True),
              default=None, help="Seconds a task's own evaluator.py may run (the default grader's "
                                 "evaluator_timeout_s, 300 unless set).")
def grade_cmd(task_dir: Path, submission: Path, grader_name: str, grader_args: str | None,
              reward_name: str, reward_args: str | None, preset: str | None, as_json: bool,
              evaluator_timeout_s: float | None) -> None:
    """Grade SUBMISSION for the task in TASK_DIR and show the reward of a one-turn trajectory."""
    task = load_any_task(task_dir)
    grader_config = parse_json_object(grader_args, "--grader-args")
    if evaluator_timeout_s is not None:
        grader_config["evaluator_timeout_s"] = evaluator_timeout_s
    reward_config = parse_json_object(reward_args, "--reward-args")
    if preset is not None:
        if reward_name != "milestone":
            raise click.UsageError(f"--preset belongs to the milestone reward; pass {reward_name!r}'s "
                                   f"settings with --reward-args")
        reward_config.setdefault("preset", preset)
    registry = get_registry()
    grader = build_component(registry, "graders", grader_name, grader_config,
                             name_option="--grader", args_option="--grader-args")
    reward_fn = build_component(registry, "rewards", reward_name, reward_config,
                                name_option="--reward", args_option="--reward-args")
    grade = _grade_safely(grader, task, submission)
    # A one-turn trajectory: the submission exists as produced by code that ran (format counts as met).
    turn = Turn(messages_in=1, text="", executions=[ExecResult(exit_code=0)] if grade.submission_exists else [])
    traj = Trajectory(task_id=task.id, scaffold="cli", backend="none", turns=[turn], submission=submission)
    reward = reward_fn.score(traj, grade)
    if as_json:
        # via model_dump_json: a NaN threshold (a NaN board row at a medal position) becomes null
        click.echo(json.dumps({"grade": json.loads(grade.model_dump_json()) | {"tier": grade.tier},
                               "reward": reward.model_dump(mode="json")}, indent=2))
    else:
        _print_grade(task, grade, reward, reward_name)
    if not grade.valid_submission:
        # SystemExit, not ctx.exit: the console script runs click with standalone_mode=False, which
        # returns ctx.exit's code instead of exiting with it.
        raise SystemExit(EXIT_INVALID_SUBMISSION)


def _grade_safely(grader: Any, task: Task, submission: Path) -> Any:
    """Grade a private copy of the submission's bytes, read once with ``O_NOFOLLOW`` (a plugin grader
    never sees a symlink, a FIFO or a file that changes while it reads); a refused file is an
    invalid grade, the default grader's own when it is the default grader."""
    import tempfile

    from sandmle.core.records import Grade

    from .grader import DefaultGrader
    from .submission import SubmissionRefused, read_submission

    max_bytes = grader.config.max_bytes if isinstance(grader, DefaultGrader) else 1 << 31
    try:
        data = read_submission(submission, max_bytes)
    except SubmissionRefused as refused:
        if isinstance(grader, DefaultGrader):
            return grader.grade(task, submission)
        return Grade(task_id=task.id, is_lower_better=task.lower_is_better, reason=str(refused),
                     submission_exists=refused.exists)
    with tempfile.TemporaryDirectory(prefix="sandmle-grade-") as tmp:
        copy = Path(tmp) / submission.name
        copy.write_bytes(data)
        return grader.grade(task, copy)


def _print_grade(task: Task, grade: Any, reward: Any, reward_name: str) -> None:
    table = Table(title=f"grade: {escape(task.id)}")
    table.add_column("field")
    table.add_column("value", justify="right")
    for key, value in grade.model_dump().items():  # a reason may quote the submission's bytes
        table.add_row(key, escape(printable(value)))
    table.add_row("tier", grade.tier)
    _console().print(table)
    parts = Table(title=f"reward {escape(reward_name)}: {reward.total:.3f}")
    parts.add_column("milestone")
    parts.add_column("points", justify="right")
    for key, value in reward.parts.items():
        parts.add_row(escape(key), f"{value:.3f}")
    _console().print(parts)


@click.command("export")
@click.argument("task_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.argument("out", type=click.Path(path_type=Path, file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["sandmle-release"]), default="sandmle-release",
              show_default=True, help="Target layout.")
@click.option("--json", "as_json", is_flag=True, help="Print the exported folders as JSON.")
def export_cmd(task_dir: Path, out: Path, fmt: str, as_json: bool) -> None:
    """Export the tasks in TASK_DIR (one task or a folder of them) to OUT in SandMLE's layout,
    with the release's task lists (ok_competitions_sanity.json: the tasks passing the sanity filter)."""
    from .sources import OK_LIST, PathConfig, export_release, make_directory, passes_sanity, write_release_lists

    tasks = make_directory(PathConfig(path=task_dir)).tasks()
    written = [str(export_release(t, out)) for t in tasks]
    left_out = sorted(t.id for t in tasks if not passes_sanity(t))
    listed = write_release_lists(out, [t.id for t in tasks if passes_sanity(t)])
    if as_json:
        click.echo(json.dumps({"format": fmt, "tasks": written, "ok_list": str(out / OK_LIST),
                               "listed": listed, "not_listed": left_out}))
        return
    _console().print(f"exported {len(written)} task(s) to {escape(str(out))} ({fmt}: answer.csv + "
                     "evaluator.py inside prepared/public/, as SandMLE's code expects)")
    _console().print(f"{OK_LIST}: {len(listed)} task(s) listed for the release's training and evaluation")
    if left_out:
        _console().print(f"[yellow]not listed (no medal thresholds): "
                         f"{escape(', '.join(left_out))}[/]")


@click.command("check")
@click.argument("name", default="default")
@click.option("--config", "config_json", default=None, help="grader config as a JSON object")
@click.option("--json", "as_json", is_flag=True, help="machine-readable results")
def grader_check_cmd(name: str, config_json: str | None, as_json: bool) -> None:
    """Run the grading battery against grader NAME (exit 1 when a check fails): the grader's
    conformance checks, hostile submissions included (a 500,000-column header, a 64 MB line,
    links and FIFOs), then the results-file checks (a forged duplicate row, results.jsonl as a
    link to /dev/zero or a FIFO)."""
    from rich.console import Console
    from rich.text import Text

    from sandmle.core.testing import run_checks
    from sandmle.evaluation.results_battery import run_results_checks

    grader = build_component(get_registry(), "graders", name, config_json,
                             name_option="grader NAME", args_option="--config")
    results = run_checks("graders", grader) + run_results_checks()
    failed = [r for r in results if not r.passed]
    if as_json:
        click.echo(json.dumps([{"check": r.name, "kind": r.kind, "passed": r.passed, "detail": r.detail,
                                "wall_s": round(r.wall_s, 3)} for r in results], indent=2))
    else:
        table = Table(title=f"grader {name!r}: {len(results) - len(failed)}/{len(results)} checks passed")
        for col in ("check", "passed", "detail", "time"):
            table.add_column(col)
        for r in results:
            table.add_row(f"{r.kind}: {r.name}", "[green]yes[/]" if r.passed else "[red]NO[/]",
                          Text(printable(r.detail[:120])), f"{r.wall_s:.2f}s")
        Console().print(table)
    if failed:
        raise SystemExit(1)
