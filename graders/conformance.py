"""Conformance checks every grader must pass (``run_checks("graders", grader, task=...)``).

Without a ``task`` in the context the checks build a toy task (:mod:`sandmle.graders.toy`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from sandmle.core.interfaces import Grader
from sandmle.core.records import Grade
from sandmle.core.task import Task
from sandmle.core.testing import check


def _task(task: Task | None, tmp: str) -> Task:
    if task is not None:
        return task
    from .toy import make_toy_task

    return make_toy_task(Path(tmp) / "toy", "binary")


@check("graders")
def missing_submission_is_a_grade(grader: Grader, task: Task | None = None) -> None:
    """A missing file and None give Grade(valid_submission=False, reason=...), never an exception."""
    with tempfile.TemporaryDirectory() as tmp:
        t = _task(task, tmp)
        for sub in (None, Path(tmp) / "does-not-exist.csv"):
            g = grader.grade(t, sub)
            assert isinstance(g, Grade), f"grade() returned {type(g).__name__}"
            assert not g.valid_submission and g.reason, f"missing submission graded valid: {g}"
            assert not g.submission_exists


@check("graders")
def garbage_submission_is_a_grade(grader: Grader, task: Task | None = None) -> None:
    """Binary junk, an empty file and a wrong-column CSV are invalid with a reason."""
    with tempfile.TemporaryDirectory() as tmp:
        t = _task(task, tmp)
        for name, data in (("junk.csv", b"\x00\xff\x89PNG" * 100), ("empty.csv", b""),
                           ("cols.csv", b"nope,nothing\n1,2\n")):
            path = Path(tmp) / name
            path.write_bytes(data)
            g = grader.grade(t, path)
            assert not g.valid_submission and g.reason, f"{name} graded valid: {g}"


@check("graders")
def sample_submission_is_valid_and_deterministic(grader: Grader, task: Task | None = None) -> None:
    """The task's sample submission grades valid, and grading it twice gives the same grade."""
    with tempfile.TemporaryDirectory() as tmp:
        t = _task(task, tmp)
        sample = t.sample_submission_path
        a, b = grader.grade(t, sample), grader.grade(t, sample)
        assert a.valid_submission, f"sample submission graded invalid: {a.reason}"
        assert a.model_dump() == b.model_dump(), f"same input, different grades: {a} vs {b}"
