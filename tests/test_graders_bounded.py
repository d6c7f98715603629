"""Issue 26 item 7: grading cannot be starved. A submission is checked for width and line length
before any parser sees it, and a large one is parsed and scored in a worker process with a time
and memory limit; each refusal is an invalid grade with a reason, never a hang or a crash.
``sandmle grader check`` runs the grading battery (hostile submissions and forged results files)."""

from __future__ import annotations

import json
import multiprocessing
import threading

import pytest

from sandmle.graders.configs import DefaultGraderConfig
from sandmle.graders.grader import DefaultGrader
from sandmle.graders.worker import shape_problem

from test_reliability_cli import sandmle
from test_reliability_generate import fake_generated


def _wide(path, columns: int, rows: int = 10):
    path.write_text("id,y," + ",".join(f"c{i}" for i in range(columns)) + "\n" + "".join(f"{i},0\n" for i in range(rows)))
    return path


def _bounded_grade(grader, task, path, limit_s=120):
    """Grade in a thread that must finish within ``limit_s`` (a hang guard, not a timing claim)."""
    box = {}
    worker = threading.Thread(target=lambda: box.update(grade=grader.grade(task, path)), daemon=True)
    worker.start()
    worker.join(limit_s)
    assert not worker.is_alive(), f"grading {path.name} still runs after {limit_s}s"
    return box["grade"]


def test_the_issues_500k_column_header_is_refused_before_parsing(tmp_path):
    task = fake_generated(tmp_path / "t", 0)
    sub = _wide(tmp_path / "wide.csv", 500_000)
    grade = _bounded_grade(DefaultGrader(), task, sub)
    assert not grade.valid_submission and grade.submission_exists
    assert "500002 columns, more than max_columns=10000" in grade.reason
    ran = sandmle("grade", task.root, sub, "--json")
    assert ran.returncode == 3 and "max_columns" in json.loads(ran.stdout)["grade"]["reason"]


def test_limits_are_configurable_and_a_long_reason_is_cut(tmp_path):
    task = fake_generated(tmp_path / "t", 0)
    sub = _wide(tmp_path / "wide.csv", 3_000)
    small = DefaultGrader(DefaultGraderConfig(max_columns=100))
    assert "more than max_columns=100" in small.grade(task, sub).reason
    roomy = DefaultGrader().grade(task, sub)  # parsed: the metric names the extra columns, cut short
    assert "unexpected columns" in roomy.reason and len(roomy.reason) < 2100 and "more characters" in roomy.reason
    ran = sandmle("grade", task.root, sub, "--grader-args", '{"max_columns": 50}')
    assert ran.returncode == 3 and "max_columns=50" in ran.stdout


def test_an_overlong_line_is_refused_before_parsing(tmp_path):
    task = fake_generated(tmp_path / "t", 0)
    sub = tmp_path / "line.csv"
    sub.write_bytes(b"id,y\n" + b"0," + b"9" * 5000 + b"\n1,0\n")
    grade = DefaultGrader(DefaultGraderConfig(max_line_bytes=1000)).grade(task, sub)
    assert not grade.valid_submission and "line 2 of the submission is longer than max_line_bytes=1000" in grade.reason


@pytest.mark.parametrize("header,width", [(b"a,b,c", 3), (b'"a,b",c', 2), (b"x,y", 2), (b'"x","y,z","w"', 3)])
def test_width_counts_quoted_names_as_csv_does(header, width):
    data = header + b"\n1\n"
    assert shape_problem(data, max_columns=width, max_line_bytes=1 << 20) is None
    assert f"has {width} columns, more than max_columns={width - 1}" in shape_problem(
        data, max_columns=width - 1, max_line_bytes=1 << 20)


def test_the_worker_gives_the_inline_grade(tmp_path):
    """A normal submission grades in the grader's own process (no start-up cost); through the
    worker (``worker_min_bytes=0``) it gets the same grade."""
    task = fake_generated(tmp_path / "t", 0)
    sub = tmp_path / "ok.csv"
    sub.write_text("id,y\n" + "".join(f"{i},{i % 2}\n" for i in range(10)))
    inline = DefaultGrader().grade(task, sub)
    worker = DefaultGrader(DefaultGraderConfig(worker_min_bytes=0)).grade(task, sub)
    assert inline.valid_submission and inline.model_dump() == worker.model_dump()
    bad = tmp_path / "bad.csv"
    bad.write_text("id,z\n0,1\n")
    reasons = {DefaultGrader(DefaultGraderConfig(worker_min_bytes=n)).grade(task, bad).reason for n in (0, 1 << 20)}
    assert len(reasons) == 1 and "missing columns" in reasons.pop()  # the same reason both ways
    assert not multiprocessing.active_children(), "a worker was left behind"


def test_a_slow_parse_is_killed_at_the_time_limit(tmp_path):
    """Without the width check (max_columns raised), 200k columns take the parser many seconds:
    the worker is killed at ``timeout_s`` and the grade says so."""
    task = fake_generated(tmp_path / "t", 0)
    sub = _wide(tmp_path / "wide.csv", 200_000)
    grader = DefaultGrader(DefaultGraderConfig(max_columns=10**7, worker_min_bytes=0, timeout_s=1))
    grade = _bounded_grade(grader, task, sub)
    assert not grade.valid_submission and "took longer than the grader's timeout_s=1" in grade.reason
    assert not multiprocessing.active_children(), "the killed worker is reaped"


def test_the_worker_memory_limit_is_an_invalid_grade(tmp_path):
    """A 60 MB submission of 1,000 integer columns needs ~240 MB of arrays: over a 64 MB cap.

    Run from a fresh interpreter: the cap is on address space, on top of what the forked worker
    inherits, and heap its parent freed but kept mapped is reusable without a new mapping. In the
    test session's process (torch, models, thousands of earlier allocations) the cap was not hit
    (CI, 2026-12-07); the docs say the cap is that loose in a process that has held much memory."""
    import subprocess
    import sys

    task = fake_generated(tmp_path / "t", 0)
    script = f"""
from sandmle.graders.worker import Invalid, run_bounded
data = ("id,y," + ",".join(f"c{{i}}" for i in range(998)) + "\\n").encode() + (",".join(["1"] * 1000) + "\\n").encode() * 30_000
args = ({task.metric!r}, data, {str(task.answers_path)!r}, ["y"], "id", [])
for mb in (64, 2048):
    try:
        run_bounded(args, timeout_s=120, memory_mb=mb)
        print(mb, "graded")
    except Invalid as exc:
        print(mb, str(exc)[:200])
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    capped, roomy = out.stdout.strip().splitlines()
    assert capped.startswith("64 ") and "memory_mb=64" in capped, capped
    assert roomy.startswith("2048 ") and "unexpected columns" in roomy, roomy  # with room, it parses (and is refused)


def test_grader_check_runs_the_grading_battery():
    """The CLI path: every grader check (hostile submissions included) and every results check."""
    ran = sandmle("grader", "check", "--json")
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    checks = {c["check"]: c for c in json.loads(ran.stdout)}
    for name in ("wide_header_is_refused_quickly", "overlong_line_is_refused_quickly",
                 "links_and_fifos_are_refused_without_blocking", "forged_duplicate_row_is_refused",
                 "link_to_dev_zero_is_refused", "fifo_is_refused", "sample_submission_is_valid_and_deterministic"):
        assert checks[name]["passed"], checks[name]


def test_the_battery_fails_a_grader_that_takes_anything():
    """The hostile checks can fail: a grader that calls every file valid (a stand-in for one
    without limits; a real unbounded parse of the wide file takes minutes) fails them."""
    from sandmle.core.interfaces import Grader
    from sandmle.core.records import Grade
    from sandmle.core.testing import run_checks

    class TakesAnything(Grader):
        def grade(self, task, submission):
            return Grade(task_id=task.id, valid_submission=True, submission_exists=True, score=1.0)

    results = {r.name: r for r in run_checks("graders", TakesAnything(), only=[
        "wide_header_is_refused_quickly", "overlong_line_is_refused_quickly",
        "links_and_fifos_are_refused_without_blocking"])}
    assert results and not any(r.passed for r in results.values())
    assert "graded valid" in results["wide_header_is_refused_quickly"].detail


def test_a_release_evaluator_never_sees_a_wide_header(tmp_path):
    """A SandMLE release task is scored by its own evaluator.py, which would parse the 500k
    columns with nothing but its timeout: the width check runs first."""
    from sandmle.graders.sources import export_release, load_release_task

    release = export_release(fake_generated(tmp_path / "src", 0), tmp_path / "rel")
    marker = tmp_path / "evaluator-ran"
    evaluator = release / "prepared" / "public" / "evaluator.py"
    evaluator.write_text(f"open({str(marker)!r}, 'w').close()\n" + evaluator.read_text())
    sub = _wide(tmp_path / "wide.csv", 500_000)
    grade = _bounded_grade(DefaultGrader(), load_release_task(release), sub)
    assert "more than max_columns" in grade.reason and not marker.exists()
