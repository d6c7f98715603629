"""Task folders are validated when loaded: a broken task is blamed on the task (TaskError naming
the fault) instead of ending every episode "no submission" or marking every submission invalid."""

from __future__ import annotations

import pytest
import yaml

from sandmle.core.errors import TaskError
from sandmle.core.task import load_task

from test_reliability_cli import no_traceback, sandmle
from test_reliability_generate import fake_generated


def break_task(root, how):
    public = root / "prepared" / "public"
    if how == "no description":
        (public / "description.md").unlink()
    elif how == "corrupt train":
        (public / "train.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00garbage" * 50)
    elif how == "empty test":
        (public / "test.csv").write_text("")
    elif how == "header-only test":
        (public / "test.csv").write_text("id,x\n")
    elif how == "unknown metric":
        meta = yaml.safe_load((root / "task.yaml").read_text())
        meta["metric"] = "accuracyy"
        (root / "task.yaml").write_text(yaml.safe_dump(meta))


@pytest.mark.parametrize("how,words", [
    ("no description", "description.md"), ("corrupt train", "train.csv is not a text CSV"),
    ("empty test", "test.csv is empty"), ("header-only test", "test.csv has a header but no rows"),
    ("unknown metric", "unknown metric 'accuracyy'"),
])
def test_a_broken_task_is_refused_when_loaded(tmp_path, how, words):
    task = fake_generated(tmp_path, 0)
    load_task(task.root)  # valid before
    break_task(task.root, how)
    with pytest.raises(TaskError, match=words.replace("(", r"\(")):
        load_task(task.root)


def test_rollout_and_grade_blame_the_task(tmp_path):
    task = fake_generated(tmp_path, 0)
    break_task(task.root, "unknown metric")
    sub = tmp_path / "sub.csv"
    sub.write_text("id,y\n" + "".join(f"{i},0\n" for i in range(10)))
    no_traceback(sandmle("grade", task.root, sub), "unknown metric")
    no_traceback(sandmle("rollout", task.root, "--out", tmp_path / "ro"), "unknown metric")


def test_grade_takes_an_evaluator_time_limit(tmp_path):
    """A release-format task whose evaluator.py hangs: ``--evaluator-timeout`` bounds it."""
    import json
    import time

    from sandmle.graders.sources import export_release

    release = export_release(fake_generated(tmp_path / "src", 0), tmp_path / "rel")
    (release / "prepared" / "public" / "evaluator.py").write_text("import time\ntime.sleep(120)\n")
    sub = tmp_path / "sub.csv"
    sub.write_text("id,y\n" + "".join(f"{i},0\n" for i in range(10)))
    t0 = time.monotonic()
    ran = sandmle("grade", release, sub, "--json", "--evaluator-timeout", "1.5")
    assert time.monotonic() - t0 < 60
    grade = json.loads(ran.stdout)["grade"]
    assert not grade["valid_submission"] and "evaluator" in grade["reason"], grade
    no_traceback(sandmle("grade", release, sub, "--evaluator-timeout", "0"), "--evaluator-timeout")


def test_grade_escapes_control_codes_a_submission_smuggles_into_the_reason(tmp_path):
    """A task's evaluator.py that echoes a bad submission value in its error (as evaluators
    do): the submission's terminal control codes reach the grade's reason, not the terminal."""
    from sandmle.graders.sources import export_release

    from test_reliability_cli import ESCAPES

    release = export_release(fake_generated(tmp_path / "src", 0), tmp_path / "rel")
    (release / "prepared" / "public" / "evaluator.py").write_text(
        "import json, sys\nbad = open(sys.argv[2]).read().splitlines()[1]\n"
        "print(json.dumps({'score': None, 'error': 'bad value: ' + bad}))\n")
    sub = tmp_path / "sub.csv"
    sub.write_text("id,y\n" + ESCAPES.replace("\r", "") + ",0\n")
    ran = sandmle("grade", release, sub)
    assert "bad value" in ran.stdout, ran.stdout
    assert "\x1b" not in ran.stdout and "\x07" not in ran.stdout and "\\x1b[2J" in ran.stdout, ran.stdout
