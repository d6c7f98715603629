"""Integration with MLE-bench and MLE-Dojo: task sources for their prepared competition folders,
graded with MLE-bench's medal rules and MLE-Dojo's HumanRank.

Uses ``core`` (task format) and ``graders`` (metric names, the shipped MLE-bench-lite list).
"""

from __future__ import annotations

from typing import Any

from sandmle.core.hookspecs import hookimpl

from .sources import lite_competitions

__all__ = ["lite_competitions"]


@hookimpl
def register_task_sources(register: Any) -> None:
    from .sources import CompetitionsConfig, make_mlebench, make_mledojo

    register("mlebench", make_mlebench, config=CompetitionsConfig,
             description="prepared MLE-bench competitions (config.yaml, leaderboard.csv): MLE-bench medal rules")
    register("mledojo", make_mledojo, config=CompetitionsConfig,
             description="MLE-Dojo competitions with public/private rank,score boards for HumanRank")
