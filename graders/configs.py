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
    max_columns: int = Field(10_000, gt=0, description=(
        "a submission whose header has more columns is invalid before it is parsed"))
    max_line_bytes: int = Field(4 * 1024 * 1024, gt=0, description=(
        "a submission with a longer line is invalid before it is parsed"))
    worker_min_bytes: int = Field(1024 * 1024, ge=0, description=(
        "submissions of this size or more are parsed and scored in a worker process with timeout_s and "
        "memory_mb (0: every submission); smaller ones in the grader's process"))
    timeout_s: float = Field(300.0, gt=0, allow_inf_nan=False, description=(
        "limit for parsing and scoring one submission in the worker; past it the worker is killed"))
    memory_mb: int = Field(4096, ge=256, description="address-space limit (RLIMIT_AS) of the grading worker")


class PathConfig(ComponentConfig):
    """A folder of task folders, or one task folder."""

    path: DirectoryPath  # a missing folder is a recipe error, reported before anything runs
