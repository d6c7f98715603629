"""``sandmle rollout`` and ``sandmle show`` as a user runs them (subprocess, real components)."""

from __future__ import annotations

import json
import subprocess
import sys

from scaffolds_support import generate_tasks


def sandmle(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "sandmle.core.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_rollout_then_show(tmp_path):
    task = generate_tasks(tmp_path / "tasks", ["diabetes-regression"])[0]
    proc = sandmle("rollout", str(task.root), "--scaffold", "mledojo", "--backend", "baseline",
                   "--args", '{"max_steps": 5}', "--out", str(tmp_path / "ro"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    files = list((tmp_path / "ro").glob("*.jsonl"))
    assert len(files) == 1
    record = json.loads(files[0].read_text())
    assert record["grade"]["valid_submission"] and record["trajectory"]["scaffold"] == "mledojo"
    assert set(record["reward"]["parts"]) and record["reward"]["total"] > 0
    assert "turn 1" in proc.stdout and "Average Position Score" in proc.stdout and "reward" in proc.stdout
    shown = sandmle("show", str(files[0]))
    assert shown.returncode == 0 and "=== Competition Info ===" in shown.stdout
    assert f"{record['reward']['total']}" in shown.stdout


def test_rollout_and_show_report_user_errors_without_traceback(tmp_path):
    task_dir = tmp_path / "x"
    task_dir.mkdir()
    bad = sandmle("rollout", str(task_dir), "--args", "{not json")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and "--args" in bad.stdout + bad.stderr
    junk = tmp_path / "junk.jsonl"
    junk.write_text("nope\n")
    shown = sandmle("show", str(junk))
    assert shown.returncode != 0 and "Traceback" not in shown.stderr and "not JSON" in shown.stdout + shown.stderr
