"""Evaluation studies end to end with real components: procedural tasks, the real ``local``
sandbox, the scripted ``baseline`` policy, real scaffolds, the ``default`` grader and ``milestone``
reward. Covers: aggregates checked by hand from results.jsonl, the report rebuilt from results
alone, resume after SIGKILL of a real ``sandmle eval`` subprocess, and an episode failure recorded
as a row instead of crashing the study.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from sandmle.core.plugins import get_manager
from sandmle.core.recipe import parse_recipe, resolve
from sandmle.evaluation.store import read_results
from sandmle.evaluation.study import plan_episodes, run_study

from test_eval_requirements import skip_unless_components  # noqa: E402  (tests/ is on sys.path)

SANDMLE = [sys.executable, "-m", "sandmle.core.cli"]
SEEDS_FOR_TESTS = "breast-cancer-binary,diabetes-regression"


@pytest.fixture(scope="session")
def task_dir(tmp_path_factory) -> Path:
    """Two real generated tasks (a classification and a regression), generated once."""
    skip_unless_components()
    out = tmp_path_factory.mktemp("eval_tasks") / "tasks"
    subprocess.run(SANDMLE + ["generate", "--n", "2", "--seeds", SEEDS_FOR_TESTS, "--out", str(out)],
                   check=True, capture_output=True, timeout=300)
    assert len(list(out.glob("*/task.yaml"))) == 2
    return out


def write_recipe(path: Path, tasks: Path, out: Path, *, scaffolds=("react", "aide"),
                 seeds=(0, 1), executor: object = "local", concurrency: object = "auto") -> Path:
    data = {"name": "eval-test", "output_dir": str(out),
            "tasks": {"name": "gen", "source": {"name": "directory", "args": {"path": str(tasks)}}},
            "sandbox": "local", "backend": "baseline", "scaffolds": list(scaffolds),
            "grader": "default", "reward": "milestone",
            "evaluation": {"seeds": list(seeds), "executor": executor, "concurrency": concurrency}}
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def load(path: Path):
    manager = get_manager()
    manager.fill_registry()
    return resolve(parse_recipe(yaml.safe_load(path.read_text())), manager.registry), manager.registry


def hand_sem(values: list[float]) -> float:
    m = sum(values) / len(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1) / len(values))


@pytest.fixture(scope="module")
def study(task_dir, tmp_path_factory) -> Path:
    """Two scaffolds x two seeds x two tasks = 8 real episodes."""
    root = tmp_path_factory.mktemp("study")
    recipe, registry = load(write_recipe(root / "r.yaml", task_dir, root / "out"))
    run_study(recipe, registry, Console(file=open(os.devnull, "w")))
    return root / "out"


def test_aggregates_match_a_hand_computation_from_results(study):
    rows = read_results(study)
    assert len(rows) == 8 and len({r["key"] for r in rows}) == 8
    assert all(r["status"] == "ok" for r in rows), [r.get("error") for r in rows]
    assert all(r["grade_valid_submission"] for r in rows)  # baseline reaches valid submissions
    for r in rows:  # every row points at its trajectory file, which holds the same grade
        record = json.loads((study / r["trajectory"]).read_text())
        assert record["grade"]["score"] == r["grade_score"]
        assert record["trajectory"]["task_id"] == r["task_id"]
    summary = {s["scaffold"]: s for s in json.loads((study / "summary.json").read_text())}
    assert set(summary) == {"react", "aide"}
    for scaffold, s in summary.items():
        mine = [r for r in rows if r["scaffold"] == scaffold]
        for flag in ("any_medal", "above_median", "valid_submission", "gold_medal"):
            per_seed = defaultdict(list)
            for r in mine:
                per_seed[r["seed"]].append(1.0 if r[f"grade_{flag}"] else 0.0)
            rates = [sum(v) / len(v) for _, v in sorted(per_seed.items())]
            assert s["rates"][flag]["mean"] == pytest.approx(sum(rates) / 2)
            assert s["rates"][flag]["sem"] == pytest.approx(hand_sem(rates))
        per_seed_reward = defaultdict(list)
        for r in mine:
            per_seed_reward[r["seed"]].append(r["reward_total"])
        rewards = [sum(v) / len(v) for _, v in sorted(per_seed_reward.items())]
        assert s["reward"]["mean"] == pytest.approx(sum(rewards) / 2)
        assert s["steps"] == pytest.approx(sum(r["steps"] for r in mine) / 4)
        assert s["totals"]["total_any_medal"] == sum(bool(r["grade_any_medal"]) for r in mine)


def test_each_episode_keeps_its_final_submission_next_to_its_trajectory(study):
    rows = read_results(study)
    for row in rows:
        kept = row["kept_files"]
        folder = row["trajectory"].removesuffix(".jsonl")
        assert kept["submission.csv"] == f"{folder}/submission.csv", row
        assert (study / kept["submission.csv"]).read_text().startswith("id,")
        if row["scaffold"] == "aide":  # and AIDE's best node's code
            assert (study / kept["best_solution.py"]).read_text().strip()
        else:
            assert "best_solution.py" not in kept


def test_report_is_rebuilt_from_results_alone(study, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "results.jsonl").write_bytes((study / "results.jsonl").read_bytes())
    proc = subprocess.run(SANDMLE + ["report", str(copy)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    md = (copy / "report.md").read_text()
    summary = json.loads((copy / "summary.json").read_text())
    react = next(s for s in summary if s["scaffold"] == "react")
    assert "| gen | react | baseline | 4 (0 failed) | 2 |" in md
    assert f"{100 * react['rates']['valid_submission']['mean']:.1f}%" in md
    html = (copy / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4 and "<img" in html and "src=\"plots/" not in html
    for name in ("medal_tiers.png", "reward_distribution.png", "humanrank_by_task.png", "reward_breakdown.png"):
        assert (copy / "plots" / name).read_bytes()[:4] == b"\x89PNG"
    # compare a run with itself: every difference is zero
    proc = subprocess.run(SANDMLE + ["compare", str(study), str(copy), "--json"],
                          capture_output=True, text=True, timeout=120)
    diffs = json.loads(proc.stdout)
    assert diffs and all(d["diff"] in (0, 0.0, None) for d in diffs)


def test_resume_after_sigkill_never_duplicates_or_loses(task_dir, tmp_path):
    recipe_path = write_recipe(tmp_path / "r.yaml", task_dir, tmp_path / "out", scaffolds=("react",),
                               seeds=(0, 1, 2), concurrency=1)
    results = tmp_path / "out" / "results.jsonl"
    proc = subprocess.Popen(SANDMLE + ["eval", str(recipe_path)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if results.exists() and results.read_text().count("\n") >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the study finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {r["key"]: r for r in read_results(tmp_path / "out")}
    assert 2 <= len(before) < 6
    with results.open("ab") as fh:  # as if the kill had torn a line mid-write
        fh.write(b'{"key": "torn-by-kill", "status": "o')
    proc = subprocess.run(SANDMLE + ["eval", str(recipe_path)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"{len(before)} already finished" in proc.stdout.replace("\n", " ")
    after = read_results(tmp_path / "out")
    recipe, registry = load(recipe_path)
    assert sorted(r["key"] for r in after) == sorted(ep.key for ep, _ in plan_episodes(recipe, registry))
    for row in after:  # finished rows were kept as they were, not rerun
        if row["key"] in before:
            assert row["finished_at"] == before[row["key"]]["finished_at"]


def test_failing_episodes_are_recorded_not_fatal(task_dir, tmp_path):
    """A sandbox that cannot start (startup timeout far too short) makes every episode raise in
    ``sandbox.open``; the study still completes, with one failed row per episode and the error."""
    path = write_recipe(tmp_path / "r.yaml", task_dir, tmp_path / "out", scaffolds=("react",),
                        seeds=(0,))
    data = yaml.safe_load(path.read_text())
    data["sandbox"] = {"name": "local", "args": {"startup_timeout_s": 0.001, "pool_size": 0}}
    path.write_text(yaml.safe_dump(data))
    recipe, registry = load(path)
    run_study(recipe, registry, Console(file=open(os.devnull, "w")))
    rows = read_results(tmp_path / "out")
    assert len(rows) == 2 and all(r["status"] == "failed" for r in rows)
    assert all("ZygoteError" in r["error"] and not r["grade_valid_submission"] for r in rows)
    assert "2 episodes, 2 failed" in (tmp_path / "out" / "report.md").read_text()


# ------------------------------------------------------------------ ray executor
@pytest.fixture(scope="module")
def local_ray():
    ray_module = pytest.importorskip("ray", reason="the ray executor needs `pip install sandmle[ray]`")
    ray_module.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray_module.shutdown()


def test_ray_executor_runs_and_resumes(task_dir, tmp_path, local_ray):
    path = write_recipe(tmp_path / "r.yaml", task_dir, tmp_path / "out", scaffolds=("react",),
                        seeds=(0, 1), executor={"name": "ray", "args": {"concurrency": 2}})
    recipe, registry = load(path)
    planned = sorted(ep.key for ep, _ in plan_episodes(recipe, registry))
    quiet = Console(file=open(os.devnull, "w"))
    run_study(recipe, registry, quiet, max_episodes=1)
    assert len(read_results(tmp_path / "out")) == 1
    run_study(recipe, registry, quiet)  # resumes: runs the other three only
    rows = read_results(tmp_path / "out")
    assert sorted(r["key"] for r in rows) == planned
    assert all(r["status"] == "ok" and r["grade_valid_submission"] for r in rows), rows
    assert len({r["pid"] for r in rows}) >= 1 and all(r["pid"] != os.getpid() for r in rows)
    assert all((tmp_path / "out" / r["trajectory"]).is_file() for r in rows)


def test_ray_executor_passes_the_executor_conformance_checks(local_ray):
    from sandmle.core.plugins import get_registry
    from sandmle.core.testing import run_checks

    executor = get_registry().create("executors", "ray", {"concurrency": 2})
    results = run_checks("executors", executor)
    assert len(results) == 4 and all(r.passed for r in results), results
