"""``sandmle grade TASK_DIR SUBMISSION.csv`` and ``sandmle tasks export DIR OUT``."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from sandmle.core.errors import TaskError
from sandmle.core.records import ExecResult, Trajectory, Turn
from sandmle.core.task import PUBLIC, Task, load_task


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


@click.command("grade")
@click.argument("task_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.argument("submission", type=click.Path(path_type=Path))
@click.option("--preset", type=click.Choice(["sandmle-code", "sandmle-paper", "sparse"]), default="sandmle-code",
              show_default=True, help="Milestone reward preset for the breakdown.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (grade + reward).")
def grade_cmd(task_dir: Path, submission: Path, preset: str, as_json: bool) -> None:
    """Grade SUBMISSION for the task in TASK_DIR and show the reward of a one-turn trajectory."""
    from sandmle.core.plugins import get_registry

    task = load_any_task(task_dir)
    registry = get_registry()
    grade = registry.create("graders", "default", {}).grade(task, submission)
    # A one-turn trajectory: the submission exists as produced by code that ran (format counts as met).
    turn = Turn(messages_in=1, text="", executions=[ExecResult(exit_code=0)] if grade.submission_exists else [])
    traj = Trajectory(task_id=task.id, scaffold="cli", backend="none", turns=[turn], submission=submission)
    reward = registry.create("rewards", "milestone", {"preset": preset}).score(traj, grade)
    if as_json:
        click.echo(json.dumps({"grade": grade.model_dump(mode="json") | {"tier": grade.tier},
                               "reward": reward.model_dump(mode="json")}, indent=2))
        return
    table = Table(title=f"grade: {escape(task.id)}")
    table.add_column("field")
    table.add_column("value", justify="right")
    for key, value in grade.model_dump().items():
        table.add_row(key, escape(str(value)))
    table.add_row("tier", grade.tier)
    _console().print(table)
    parts = Table(title=f"reward milestone/{preset}: {reward.total:.3f}")
    parts.add_column("milestone")
    parts.add_column("points", justify="right")
    for key, value in reward.parts.items():
        parts.add_row(key, f"{value:.3f}")
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
