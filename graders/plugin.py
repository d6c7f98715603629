"""Registers the built-in grader, reward, task sources and the ``grade`` / ``tasks export`` commands."""

from __future__ import annotations

from typing import Any

import click

from sandmle.core.hookspecs import hookimpl

from .configs import DefaultGraderConfig, PathConfig
from .rewards import MilestoneConfig


def _make_default(config: DefaultGraderConfig) -> Any:
    from .grader import make_default_grader

    return make_default_grader(config)


def _make_milestone(config: MilestoneConfig) -> Any:
    from .rewards import make_milestone

    return make_milestone(config)


def _make_directory(config: PathConfig) -> Any:
    from .sources import make_directory

    return make_directory(config)


def _make_release(config: PathConfig) -> Any:
    from .sources import make_release

    return make_release(config)


@hookimpl
def register_graders(register: Any) -> None:
    register("default", _make_default, config=DefaultGraderConfig,
             description="validate, score with the task's metric, MLE-bench medals, HumanRank")


@hookimpl
def register_rewards(register: Any) -> None:
    register("milestone", _make_milestone, config=MilestoneConfig,
             description="SandMLE's milestone reward (presets sandmle-code, sandmle-paper, sparse)")


@hookimpl
def register_task_sources(register: Any) -> None:
    register("directory", _make_directory, config=PathConfig,
             description="a folder of tasks in sandmle's format (or one task folder)")
    register("sandmle-release", _make_release, config=PathConfig,
             description="SandMLE's released bundle (answer.csv + evaluator.py inside public/, kept hidden)")


@hookimpl
def register_commands(cli: click.Group) -> None:
    from sandmle.core.cli import subgroup

    from .commands import export_cmd, grade_cmd, grader_check_cmd

    cli.add_command(grade_cmd)
    subgroup(cli, "tasks").add_command(export_cmd)
    group = cli.commands.get("grader")
    if not isinstance(group, click.Group):
        group = click.Group("grader", help="Check a grader against hostile submissions and forged results files.")
        cli.add_command(group)
    group.add_command(grader_check_cmd)


@hookimpl
def metric_lower_is_better(metric: str) -> bool | None:
    from .metrics import get_metric

    try:
        return get_metric(metric).lower_is_better
    except KeyError:  # not one of ours; another plugin may score it
        return None
