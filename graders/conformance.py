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


# -- hostile submissions (the grading counterpart of the sandbox battery) ---------------------------
def _grade_within(grader: Grader, task: Task, path: Path, limit_s: float) -> Grade:
    """Grade in a thread; fail the check when grading is still running after ``limit_s``."""
    import threading

    box: dict[str, object] = {}

    def work() -> None:
        try:
            box["grade"] = grader.grade(task, path)
        except BaseException as exc:  # noqa: BLE001 - reported by the check
            box["error"] = exc

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(limit_s)
    assert not thread.is_alive(), f"grading {path.name} still ran after {limit_s:g}s (grader starved)"
    assert "error" not in box, f"grading {path.name} raised {box['error']!r}"
    grade = box["grade"]
    assert isinstance(grade, Grade)
    return grade


@check("graders")
def wide_header_is_refused_quickly(grader: Grader, task: Task | None = None) -> None:
    """A ~4 MB submission whose header has 500,000 columns (the issue's 4.9 MB one took 184 s and
    790 MB on the host) is invalid with a short reason within 60 s."""
    with tempfile.TemporaryDirectory() as tmp:
        t = _task(task, tmp)
        path = Path(tmp) / "wide.csv"
        header = ",".join([t.id_column, *t.target_columns] + [f"x{i}" for i in range(500_000)])
        path.write_text(header + "\n" + "1,0\n" * 10)
        g = _grade_within(grader, t, path, 60)
        assert not g.valid_submission and g.reason, f"a 500k-column submission graded valid: {g.score}"
        assert len(g.reason) <= 4000, f"the reason is {len(g.reason)} characters long (it lists every column?)"


@check("graders")
def overlong_line_is_refused_quickly(grader: Grader, task: Task | None = None) -> None:
    """One 64 MB line (no newline) is invalid within 60 s."""
    with tempfile.TemporaryDirectory() as tmp:
        t = _task(task, tmp)
        path = Path(tmp) / "line.csv"
        with path.open("wb") as fh:
            fh.write(f"{t.id_column},{t.target_columns[0] if t.target_columns else 'y'}\n1,".encode())
            fh.write(b"9" * (64 * 1024 * 1024))
        g = _grade_within(grader, t, path, 60)
        assert not g.valid_submission and g.reason, "a 64 MB line graded valid"


@check("graders")
def links_and_fifos_are_refused_without_blocking(grader: Grader, task: Task | None = None) -> None:
    """``submission.csv`` as a link to the hidden answers, to ``/dev/zero`` or as a FIFO is
    invalid (never followed, never read), within 30 s each."""
    import os

    with tempfile.TemporaryDirectory() as tmp:
        t = _task(task, tmp)
        for name, make in (("answers", lambda p: p.symlink_to(t.answers_path)),
                           ("zero", lambda p: p.symlink_to("/dev/zero")), ("fifo", os.mkfifo)):
            path = Path(tmp) / name / "submission.csv"
            path.parent.mkdir()
            make(path)
            g = _grade_within(grader, t, path, 30)
            assert not g.valid_submission, f"submission.csv as {name} graded valid: {g.score}"
