"""Grader ``exact-match``: the share of rows whose every target column equals the answer."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from sandmle.core import Grade, Grader, Task
from sandmle.graders.submission import SubmissionRefused, read_submission
from sandmle.graders.worker import shape_problem

from .config import ExactMatchConfig


class ExactMatchGrader(Grader):
    """Exact-match accuracy over every target column; invalid files become invalid grades."""

    def __init__(self, config: ExactMatchConfig):
        self.config = config

    def grade(self, task: Task, submission: Path | None) -> Grade:
        # Agent output is untrusted: read it once, never through a link or from a FIFO, and refuse
        # a header too wide or a line too long before pandas sees it (the grader checks do this).
        try:
            data = read_submission(submission, max_bytes=64 * 1024 * 1024)
        except SubmissionRefused as exc:
            return Grade(task_id=task.id, submission_exists=exc.exists, reason=str(exc))
        problem = shape_problem(data, max_columns=1_000, max_line_bytes=1024 * 1024)
        if problem:
            return Grade(task_id=task.id, submission_exists=True, reason=problem)
        try:
            sub = pd.read_csv(io.BytesIO(data), dtype=str)
            ans = pd.read_csv(task.answers_path, dtype=str)
            merged = ans.merge(sub, on=task.id_column, suffixes=("_true", "_pred"), validate="1:1")
            if len(merged) != len(ans):
                return Grade(task_id=task.id, submission_exists=True, reason="ids do not match the answers")
            hits = pd.Series(True, index=merged.index)
            for col in task.target_columns:
                a, b = merged[f"{col}_true"].astype(str), merged[f"{col}_pred"].astype(str)
                if not self.config.case_sensitive:
                    a, b = a.str.lower(), b.str.lower()
                hits &= a == b
        except Exception as exc:  # noqa: BLE001 - any unreadable submission is an invalid grade
            return Grade(task_id=task.id, submission_exists=True, reason=f"{type(exc).__name__}: {exc}")
        return Grade(task_id=task.id, score=float(hits.mean()), valid_submission=True,
                     submission_exists=True, is_lower_better=False)
