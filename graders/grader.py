"""The ``default`` grader: validate, score, medals, HumanRank, beats-the-sample-submission.

Tasks in the toolkit's own format are scored in-process with :mod:`sandmle.graders.metrics`
(the same code their ``evaluator.py`` embeds). ``sandmle-release`` tasks are scored by running
their own ``evaluator.py`` in a subprocess. Medal thresholds come from ``task.thresholds`` or,
when absent, from MLE-bench's rules applied to ``task.leaderboard``. A bad submission is a
graded result (``valid_submission=False`` with a reason), never an exception.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

import pandas as pd
from pydantic import Field

from sandmle.core.interfaces import ComponentConfig, Grader
from sandmle.core.records import Grade
from sandmle.core.task import MedalThresholds, Task

from .evaluator import EvaluatorError, run_evaluator
from .medals import human_rank, leaderboard_direction, medals, thresholds_from_leaderboard
from .metrics import compute_score


class DefaultGraderConfig(ComponentConfig):
    """Limits of the default grader."""

    max_bytes: int = Field(200 * 1024 * 1024, gt=0, description="larger submissions are invalid")
    evaluator_timeout_s: float = Field(300.0, gt=0, description="limit for a task's own evaluator.py")
    sample_baseline: bool = Field(True, description="grade sample_submission.csv to fill beats_sample_submission")


class _Scored(Exception):
    """Carries an invalid-submission reason out of the scoring step."""


class DefaultGrader(Grader):
    """Grades any task format the toolkit loads; see the module docstring."""

    def __init__(self, config: DefaultGraderConfig | None = None):
        self.config = config or DefaultGraderConfig()
        self._sample_scores: dict[tuple[str, float], float | None] = {}
        self._lock = threading.Lock()

    # -- public API ----------------------------------------------------------------------------
    def grade(self, task: Task, submission: Path | None) -> Grade:
        """Grade ``submission`` for ``task``; never raises for a bad submission."""
        grade = self._grade_only(task, submission)
        if grade.valid_submission and self.config.sample_baseline and grade.score is not None:
            baseline = self.sample_score(task)
            if baseline is not None:
                better = grade.score < baseline if task.lower_is_better else grade.score > baseline
                grade.beats_sample_submission = bool(better)
        return grade

    def sample_score(self, task: Task) -> float | None:
        """Score of the task's own ``sample_submission.csv`` (graded once per task and cached)."""
        path = task.public_dir / "sample_submission.csv"
        key = (str(path.resolve()), path.stat().st_mtime if path.exists() else 0.0)
        with self._lock:
            if key not in self._sample_scores:
                self._sample_scores[key] = self._grade_only(task, path).score
            return self._sample_scores[key]

    # -- steps ---------------------------------------------------------------------------------
    def _grade_only(self, task: Task, submission: Path | None) -> Grade:
        grade = Grade(task_id=task.id, is_lower_better=task.lower_is_better)
        try:
            path = self._check_file(submission)
            grade.submission_exists = True
            score, thresholds, lower = self._score(task, path)
        except _Scored as reason:
            grade.submission_exists = grade.submission_exists or (submission is not None and Path(submission).is_file())
            grade.reason = str(reason)
            self._fill_thresholds(grade, self._thresholds(task)[0])
            return grade
        except Exception as exc:  # noqa: BLE001 - a grader never raises on a submission
            grade.reason = f"grading failed: {type(exc).__name__}: {exc}"
            return grade
        grade.score, grade.valid_submission, grade.is_lower_better = score, True, lower
        self._fill_thresholds(grade, thresholds)
        if thresholds is not None:
            m = medals(score, thresholds, lower)
            grade.gold_medal, grade.silver_medal, grade.bronze_medal = m.gold, m.silver, m.bronze
            grade.any_medal, grade.above_median, grade.at_or_above_median = m.any_medal, m.above_median, m.at_or_above_median
        grade.human_rank = human_rank(score, [task.leaderboard or [], task.public_leaderboard or []], lower)
        return grade

    def _check_file(self, submission: Path | None) -> Path:
        if submission is None:
            raise _Scored("no submission file was produced")
        path = Path(submission)
        if not path.exists():
            raise _Scored(f"submission file not found: {path.name}")
        if not path.is_file():
            raise _Scored(f"submission {path.name} is not a regular file")
        size = path.stat().st_size
        if size == 0:
            raise _Scored("submission file is empty")
        if size > self.config.max_bytes:
            raise _Scored(f"submission file is too large ({size} bytes > {self.config.max_bytes})")
        return path

    def _score(self, task: Task, path: Path) -> tuple[float, MedalThresholds | None, bool]:
        if task.format == "sandmle-release" or task.answers_path is None or not task.target_columns:
            return self._score_with_evaluator(task, path)
        try:
            sub = pd.read_csv(path)
        except pd.errors.EmptyDataError as exc:
            raise _Scored("submission file is empty (no header)") from exc
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
            raise _Scored(f"submission is not a readable CSV: {exc}") from exc
        if sub.empty:
            raise _Scored("submission has a header but no rows")
        answers = pd.read_csv(task.answers_path)
        try:
            score = compute_score(task.metric, answers, sub, task.target_columns, task.id_column)
        except ValueError as exc:
            raise _Scored(str(exc)) from exc
        thresholds, lower = self._thresholds(task)
        return score, thresholds, lower

    def _score_with_evaluator(self, task: Task, path: Path) -> tuple[float, MedalThresholds | None, bool]:
        if task.evaluator_path is None:
            raise _Scored("task has neither answers with target columns nor an evaluator.py")
        try:
            out = run_evaluator(task.evaluator_path, path, timeout=self.config.evaluator_timeout_s)
        except EvaluatorError as exc:
            raise _Scored(f"evaluator failed on the submission: {exc}") from exc
        score = out.get("score")
        if score is None or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise _Scored(out.get("error") or f"evaluator returned no score ({score!r})")
        lower = bool(out.get("is_lower_better", task.lower_is_better))
        th = {k: out.get(f"{k}_threshold") for k in ("gold", "silver", "bronze", "median")}
        thresholds = MedalThresholds(**th) if all(isinstance(v, (int, float)) for v in th.values()) else None
        return float(score), thresholds or self._thresholds(task)[0], lower

    @staticmethod
    def _thresholds(task: Task) -> tuple[MedalThresholds | None, bool]:
        if task.thresholds is not None:
            return task.thresholds, task.lower_is_better
        if task.leaderboard:
            return thresholds_from_leaderboard(task.leaderboard), leaderboard_direction(task.leaderboard)
        return None, task.lower_is_better

    @staticmethod
    def _fill_thresholds(grade: Grade, th: MedalThresholds | None) -> None:
        if th is not None:
            grade.gold_threshold, grade.silver_threshold = th.gold, th.silver
            grade.bronze_threshold, grade.median_threshold = th.bronze, th.median


def make_default_grader(config: DefaultGraderConfig) -> DefaultGrader:
    """Factory registered as grader ``default``."""
    return DefaultGrader(config)
