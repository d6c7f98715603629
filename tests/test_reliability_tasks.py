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


# -- issue 26 item 9: task.yaml paths stay inside the task, booleans are booleans, bytes are text
def _edit_meta(root, **changes):
    meta = yaml.safe_load((root / "task.yaml").read_text())
    meta.update(changes)
    (root / "task.yaml").write_text(yaml.safe_dump(meta))


@pytest.mark.parametrize("key,value", [
    ("answers", "/etc/passwd"), ("answers", "../../../../../../etc/passwd"),
    ("evaluator", "/etc/passwd"), ("public_dir", "/etc"), ("answers", "prepared/escape.csv"),
])
def test_task_paths_must_stay_inside_the_task_folder(tmp_path, key, value):
    task = fake_generated(tmp_path, 0)
    if value == "prepared/escape.csv":  # a link inside the folder that points out of it
        (task.root / "prepared" / "escape.csv").symlink_to("/etc/passwd")
    _edit_meta(task.root, **{key: value})
    with pytest.raises(TaskError, match=f"'{key}' points outside the task folder"):
        load_task(task.root)


def test_grade_refuses_a_task_whose_answers_point_at_etc_passwd(tmp_path):
    task = fake_generated(tmp_path, 0)
    _edit_meta(task.root, answers="/etc/passwd", target_columns=["root:x:0:0:root:/root:/bin/bash"])
    sub = tmp_path / "sub.csv"
    sub.write_text("id,y\n0,1\n")
    no_traceback(sandmle("grade", task.root, sub), "points outside the task folder")


@pytest.mark.parametrize("value", ["maybe", "false", "yes please", 1, 0, [True]])
def test_lower_is_better_must_be_a_yaml_boolean(tmp_path, value):
    task = fake_generated(tmp_path, 0)
    _edit_meta(task.root, lower_is_better=value)
    with pytest.raises(TaskError, match="lower_is_better must be true or false"):
        load_task(task.root)


def test_yaml_booleans_still_load(tmp_path):
    task = fake_generated(tmp_path, 0)
    (task.root / "task.yaml").write_text((task.root / "task.yaml").read_text().replace(
        "lower_is_better: false", "lower_is_better: False"))
    assert load_task(task.root).lower_is_better is False


@pytest.mark.parametrize("name,data,words", [
    ("task.yaml", b"\xff\xfe\x89PNG" * 30, "not UTF-8 text"),
    ("task.yaml", b"id: x\x00\x01\x02", "binary data"),
    ("prepared/public/description.md", b"\x89PNG\r\n\x1a\n\xff\xfe" * 40, "not UTF-8 text"),
])
def test_a_binary_task_file_is_a_task_error(tmp_path, name, data, words):
    task = fake_generated(tmp_path, 0)
    (task.root / name).write_bytes(data)
    with pytest.raises(TaskError, match=words):
        load_task(task.root)
    no_traceback(sandmle("grade", task.root, tmp_path / "none.csv"), words)


@pytest.mark.parametrize("target", ["/dev/zero", "fifo"])
def test_task_yaml_that_is_not_a_regular_file_is_refused_without_blocking(tmp_path, target):
    import os

    task = fake_generated(tmp_path, 0)
    (task.root / "task.yaml").unlink()
    if target == "fifo":
        os.mkfifo(task.root / "task.yaml")
    else:
        (task.root / "task.yaml").symlink_to(target)
    with pytest.raises(TaskError):
        load_task(task.root)


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_grade_refuses_a_non_finite_evaluator_timeout(tmp_path, value):
    task = fake_generated(tmp_path, 0)
    ran = sandmle("grade", task.root, tmp_path / "sub.csv", "--evaluator-timeout", value)
    no_traceback(ran, "--evaluator-timeout", "not a finite number")
