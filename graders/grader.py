"""The ``default`` grader: validate, score, medals, HumanRank, beats-the-sample-submission.

Tasks in the toolkit's own format and MLE-bench / MLE-Dojo competitions are scored in-process
with :mod:`sandmle.graders.metrics` (the same code a generated task's ``evaluator.py`` embeds).
``sandmle-release`` tasks are scored by running their own ``evaluator.py`` in a subprocess, on a
private copy of the submission's bytes. Medal thresholds come from ``task.thresholds``, the
evaluator's output, or MLE-bench's rules applied to ``task.leaderboard``.

Precision follows MLE-bench: ``Grade.score`` is the metric rounded once to 5 decimals and medals
compare it with unrounded thresholds; ``Grade.raw_score`` keeps the unrounded value, which
HumanRank ranks (as MLE-Dojo does). The direction is the task's (its metric's), never guessed from
the leaderboard. A bad submission is a graded result (``valid_submission=False`` with a reason
saying what to change), never an exception. The submission is read once from a descriptor opened
with ``O_NOFOLLOW`` (:mod:`sandmle.graders.submission`): symlinks, FIFOs and devices are refused.
Its width and line lengths are checked before parsing, and a large one is parsed and scored in a
worker process with a time and memory limit (:mod:`sandmle.graders.worker`).
"""

from __future__ import annotations

import math
import tempfile
import threading
from pathlib import Path

import pandas as pd

from sandmle.core.interfaces import Grader
from sandmle.core.records import Grade
from sandmle.core.task import MedalThresholds, Task

from .configs import DefaultGraderConfig
from .evaluator import EvaluatorError, release_bool, release_number, run_evaluator
from .medals import human_rank, medals, report_score, thresholds_from_leaderboard
from .submission import SubmissionRefused, read_submission
from .worker import Invalid, run_bounded, score_csv, shape_problem


MAX_REASON_CHARS = 2000


class _Scored(Exception):
    """Carries an invalid-submission reason out of the scoring step."""


class DefaultGrader(Grader):
    """Grades any task format the toolkit loads; see the module docstring."""

    def __init__(self, config: DefaultGraderConfig | None = None):
        self.config = config or DefaultGraderConfig()
        self._sample_scores: dict[tuple[str, float, int], float | None] = {}
        self._lock = threading.Lock()

    # -- public API ----------------------------------------------------------------------------
    def grade(self, task: Task, submission: Path | None) -> Grade:
        """Grade ``submission`` for ``task``; never raises for a bad submission."""
        try:
            data = read_submission(submission, self.config.max_bytes)
        except SubmissionRefused as refused:
            grade = self._invalid(task, str(refused))
            grade.submission_exists = refused.exists
            return grade
        grade = self._grade_bytes(task, data)
        if grade.valid_submission and self.config.sample_baseline and grade.raw_score is not None:
            baseline = self.sample_score(task)
            if baseline is not None:
                lower = bool(grade.is_lower_better)
                grade.beats_sample_submission = bool(grade.raw_score < baseline if lower else grade.raw_score > baseline)
        return grade

    def sample_score(self, task: Task) -> float | None:
        """Raw score of the task's own sample submission (graded once per task and cached).

        The sample belongs to the task (not to an agent), so it is read by path, links followed."""
        path = task.sample_submission_path
        try:
            info = path.stat()
        except OSError:
            return None
        key = (str(path.resolve()), info.st_mtime, info.st_size)
        with self._lock:
            if key not in self._sample_scores:
                self._sample_scores[key] = self._grade_bytes(task, path.read_bytes()).raw_score
            return self._sample_scores[key]

    # -- steps ---------------------------------------------------------------------------------
    def _invalid(self, task: Task, reason: str) -> Grade:
        if len(reason) > MAX_REASON_CHARS:  # e.g. a list of 500,000 unexpected column names
            reason = reason[:MAX_REASON_CHARS] + f"... ({len(reason) - MAX_REASON_CHARS} more characters)"
        grade = Grade(task_id=task.id, is_lower_better=task.lower_is_better, reason=reason)
        self._fill_thresholds(grade, self._thresholds(task))
        return grade

    def _grade_bytes(self, task: Task, data: bytes) -> Grade:
        try:
            raw, thresholds, lower = self._score(task, data)
        except _Scored as reason:
            grade = self._invalid(task, str(reason))
            grade.submission_exists = True
            return grade
        except Exception as exc:  # noqa: BLE001 - a grader never raises on a submission
            grade = self._invalid(task, f"grading failed: {type(exc).__name__}: {exc}")
            grade.submission_exists = True
            return grade
        numpy_rounding = task.provenance.get("score_rounding") == "numpy"  # see medals.report_score
        grade = Grade(task_id=task.id, submission_exists=True, valid_submission=True, is_lower_better=lower,
                      score=report_score(raw, numpy_rounding), raw_score=raw)
        self._fill_thresholds(grade, thresholds)
        if thresholds is not None:
            m = medals(raw, thresholds, lower, numpy_rounding)
            grade.gold_medal, grade.silver_medal, grade.bronze_medal = m.gold, m.silver, m.bronze
            grade.any_medal, grade.above_median, grade.at_or_above_median = m.any_medal, m.above_median, m.at_or_above_median
        grade.human_rank = human_rank(raw, [task.leaderboard or [], task.public_leaderboard or []], lower)
        return grade

    def _score(self, task: Task, data: bytes) -> tuple[float, MedalThresholds | None, bool]:
        if task.format == "sandmle-release" or task.answers_path is None or not task.target_columns:
            return self._score_with_evaluator(task, data)
        cfg = self.config
        problem = shape_problem(data, cfg.max_columns, cfg.max_line_bytes)  # before any parser sees it
        if problem:
            raise _Scored(problem)
        args = (task.metric, data, task.answers_path, list(task.target_columns), task.id_column,
                self._passthrough_columns(task))
        try:
            if len(data) >= cfg.worker_min_bytes:
                raw = run_bounded(args, cfg.timeout_s, cfg.memory_mb)
            else:  # small and narrow (checked above): bounded by construction, no process start
                raw = score_csv(*args)
        except Invalid as exc:
            raise _Scored(str(exc)) from exc
        return raw, self._thresholds(task), task.lower_is_better

    def _score_with_evaluator(self, task: Task, data: bytes) -> tuple[float, MedalThresholds | None, bool]:
        if task.evaluator_path is None:
            raise _Scored("task has neither answers with target columns nor an evaluator.py")
        problem = shape_problem(data, self.config.max_columns, self.config.max_line_bytes)
        if problem:  # the task's own evaluator would parse it with no limit but its timeout
            raise _Scored(problem)
        # The evaluator reads a private copy: the agent's path is never handed to it.
        with tempfile.TemporaryDirectory(prefix="sandmle-grade-") as tmp:
            copy = Path(tmp) / "submission.csv"
            copy.write_bytes(data)
            try:
                out = run_evaluator(task.evaluator_path, copy, timeout=self.config.evaluator_timeout_s)
            except EvaluatorError as exc:
                raise _Scored(f"evaluator failed on the submission: {exc}") from exc
        # Read as SandMLE's release reads the same JSON (graders/evaluator.py cites the lines):
        # "0.5" is a number and "true" or 1 a direction. Departures: a bool or non-finite score is
        # no score, and a missing direction is the task's (the release then assumes higher-is-better).
        raw_score = out.get("score")
        score = None if isinstance(raw_score, bool) else release_number(raw_score)
        if score is None or not math.isfinite(score):
            raise _Scored(out.get("error") or f"evaluator returned no score ({raw_score!r:.80})")
        lower = release_bool(out.get("is_lower_better"))
        if lower is None:
            lower = task.lower_is_better
        th = {k: release_number(out.get(f"{k}_threshold")) for k in ("gold", "silver", "bronze", "median")}
        usable = all(v is not None for v in th.values())
        return score, MedalThresholds(**th) if usable else self._thresholds(task), lower

    def _passthrough_columns(self, task: Task) -> list[str]:
        """Columns of the sample submission besides the id and targets (MLE-bench's
        detecting-insults keeps ``Date``): a submission may carry them; any other column is refused."""
        try:
            header = [str(c) for c in pd.read_csv(task.sample_submission_path, nrows=0).columns]
        except (OSError, ValueError, pd.errors.ParserError):
            return []
        return [c for c in header if c != task.id_column and c not in task.target_columns]

    @staticmethod
    def _thresholds(task: Task) -> MedalThresholds | None:
        if task.thresholds is not None:
            return task.thresholds
        if task.leaderboard:
            return thresholds_from_leaderboard(task.leaderboard)
        return None

    @staticmethod
    def _fill_thresholds(grade: Grade, th: MedalThresholds | None) -> None:
        if th is not None:
            grade.gold_threshold, grade.silver_threshold = th.gold, th.silver
            grade.bronze_threshold, grade.median_threshold = th.bronze, th.median


def make_default_grader(config: DefaultGraderConfig) -> DefaultGrader:
    """Factory registered as grader ``default``."""
    return DefaultGrader(config)
