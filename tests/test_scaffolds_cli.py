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


# ----------------------------------------------------------------------------- argument mistakes
from cli_support import cli  # noqa: E402,F401  (fixture)


def _toy(tmp_path):
    from sandmle.graders.toy import make_toy_task

    return make_toy_task(tmp_path / "toy", "binary")


def test_rollout_argument_mistakes_get_the_recipe_message_with_did_you_mean(tmp_path, cli):
    task = _toy(tmp_path)
    code, out, err = cli("rollout", str(task.root), "--scaffold", "aide", "--args", '{"num_draft": 2}')
    assert code == 2 and "Traceback" not in err and out == ""
    line = "num_draft: unknown argument for scaffold 'aide' (did you mean 'num_drafts'?); valid arguments:"
    assert "invalid --args for scaffold 'aide':" in err and line in err
    # the recipe path words the same mistake the same way
    recipe = tmp_path / "r.yaml"
    recipe.write_text("scaffolds: [{name: aide, args: {num_draft: 2}}]\n")
    code, _, recipe_err = cli("recipe", "validate", str(recipe))
    assert code == 2 and f"scaffolds[0].args.{line}" in recipe_err
    # nested config models list their own keys
    code, _, err = cli("rollout", str(task.root), "--args", '{"limits": {"max_llm_call": 3}}')
    assert code == 2
    assert "limits.max_llm_call: unknown argument for scaffold 'react' (did you mean 'max_llm_calls'?)" in err
    assert "valid arguments: exec_timeout_s, max_llm_calls, max_wall_s" in err
    code, _, err = cli("rollout", str(task.root), "--args", "{not json")
    assert code == 2 and "invalid --args: not valid JSON" in err
    code, _, err = cli("rollout", str(task.root), "--args", "[1, 2]")
    assert code == 2 and "invalid --args: must be a JSON object" in err
    code, _, err = cli("rollout", str(task.root), "--backend-args", '{"modle": "x"}')
    assert code == 2 and "invalid --backend-args for backend 'baseline':" in err and "modle: unknown argument" in err
    code, _, err = cli("rollout", str(task.root), "--args", '{"steps": 0}', "--scaffold", "aide")
    assert code == 2 and "steps: Input should be greater than or equal to 1 (got 0)" in err
    code, _, err = cli("rollout", str(task.root), "--scaffold", "reactt")
    assert code == 2 and "invalid --scaffold: unknown scaffold 'reactt'; valid choices: aide, mledojo, react" in err


def test_sandbox_check_config_mistakes_are_clean(cli):
    code, _, err = cli("sandbox", "check", "local", "--config", '{"memory_mbb": 1}')
    assert code == 2 and "Traceback" not in err
    assert "invalid --config for sandbox 'local':" in err and "memory_mbb: unknown argument for sandbox 'local'" in err
    code, _, err = cli("sandbox", "check", "local", "--config", "{oops")
    assert code == 2 and "invalid --config: not valid JSON" in err
    code, _, err = cli("sandbox", "check", "nope")
    assert code == 2 and "unknown sandbox 'nope'" in err


# ----------------------------------------------------------------------------- kept files, release layout
def test_rollout_keeps_the_final_submission_and_runs_release_layout_tasks(tmp_path, cli):
    from sandmle.graders.sources import export_release

    task = _toy(tmp_path)
    release = export_release(task, tmp_path / "release")
    assert (release / "prepared" / "public" / "evaluator.py").is_file() and not (release / "task.yaml").exists()
    out = tmp_path / "ro"
    code, stdout, err = cli("rollout", str(release), "--scaffold", "react", "--out", str(out), "--json")
    assert code == 0, err
    record = json.loads(stdout)
    assert record["grade"]["valid_submission"] and record["episode"]["task_id"] == task.id
    kept = record["trajectory"]["extra"]["kept_files"]
    stem = f"{task.id}.react.baseline.s0"
    assert kept == {"submission.csv": f"{stem}/submission.csv"}
    saved = (out / stem / "submission.csv").read_text()
    assert saved.splitlines()[0] == "id,target" and len(saved.splitlines()) > 5
    assert (out / f"{stem}.jsonl").is_file()


def test_rollout_keeps_aides_best_solution_code(tmp_path, cli):
    task = _toy(tmp_path)
    out = tmp_path / "ro"
    code, stdout, err = cli("rollout", str(task.root), "--scaffold", "aide", "--args", '{"steps": 3}',
                            "--out", str(out), "--json")
    assert code == 0, err
    traj = json.loads(stdout)["trajectory"]
    best = next(n for n in traj["extra"]["journal"] if n["id"] == traj["extra"]["best_node"])
    kept = (out / f"{task.id}.aide.baseline.s0" / "best_solution.py").read_text()
    assert kept == best["code"] and "submission.csv" in kept
    assert traj["extra"]["kept_files"]["best_solution.py"].endswith("/best_solution.py")
