"""The config models of the graders room's components, apart from the components themselves:
registering a component needs only its config, and the components import pandas, scipy and
sklearn (seconds), which ``sandmle --help`` should not pay for."""

from __future__ import annotations

from pydantic import DirectoryPath, Field

from sandmle.core.interfaces import ComponentConfig


class DefaultGraderConfig(ComponentConfig):
    """Limits of the default grader."""

    max_bytes: int = Field(200 * 1024 * 1024, gt=0, description="larger submissions are invalid")
    evaluator_timeout_s: float = Field(300.0, gt=0, description="limit for a task's own evaluator.py")
    sample_baseline: bool = Field(True, description="grade the task's sample submission to fill beats_sample_submission")


class PathConfig(ComponentConfig):
    """A folder of task folders, or one task folder."""

    path: DirectoryPath  # a missing folder is a recipe error, reported before anything runs
