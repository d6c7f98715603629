"""Task sources on small realistic fixture folders: directory, sandmle-release (export round
trip, hidden answers never in a real sandbox), mlebench and mledojo; and ``sandmle grade``."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from cli_support import cli  # noqa: F401  (fixture)

from sandmle.core.cli import build_cli
from sandmle.core.errors import TaskError
from sandmle.core.plugins import get_registry
from sandmle.graders.grader import DefaultGrader
from sandmle.graders.toy import make_toy_task
from sandmle.plugins.mlebench import lite_competitions


def _source(name: str, **config: object):
    return get_registry().create("task_sources", name, config)


@pytest.fixture(scope="module")
def task_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("set")
    for kind in ("binary", "regression"):
        make_toy_task(root / kind, kind)
    (root / "notes").mkdir()  # a folder without task.yaml is ignored
    return root


def test_directory_source(task_set: Path, tmp_path: Path) -> None:
    assert [t.id for t in _source("directory", path=task_set).tasks()] == ["toy-binary", "toy-regression"]
    assert [t.id for t in _source("directory", path=task_set / "binary").tasks()] == ["toy-binary"]
    with pytest.raises(TaskError, match="holds no tasks"):
        _source("directory", path=tmp_path).tasks()
    with pytest.raises(ValueError, match="does not point to a directory"):  # refused when configured
        _source("directory", path=tmp_path / "missing")


def test_directory_source_finds_a_runs_task_sets(tmp_path: Path, cli) -> None:
    """A run's tasks/ folder holds a task-set folder that holds the tasks: it was refused with
    "no task.yaml in it or in its sub-folders" though there were. Now searched 3 levels down;
    moved-aside candidates (.invalid) are not tasks; the error says where it looked."""
    run = tmp_path / "run"
    for kind in ("binary", "regression"):
        make_toy_task(run / "tasks" / "set-a" / kind, kind)
    make_toy_task(run / "tasks" / "set-a" / ".invalid" / "broken", "binary")
    assert [t.id for t in _source("directory", path=run / "tasks").tasks()] == ["toy-binary", "toy-regression"]
    assert len(_source("directory", path=run).tasks()) == 2  # three levels: run/tasks/set/task
    too_deep = tmp_path / "deep"
    make_toy_task(too_deep / "a" / "b" / "c" / "task", "binary")
    with pytest.raises(TaskError, match=r"holds no tasks: no task.yaml in it or in the 3 folder\(s\) up to 3 levels below"):
        _source("directory", path=too_deep).tasks()
    recipe = tmp_path / "r.yaml"  # the user's path: a recipe pointed at the run's tasks/ folder
    recipe.write_text(f"tasks: {{source: {{name: directory, args: {{path: {run / 'tasks'}}}}}}}\n"
                      f"output_dir: {tmp_path / 'out'}\nevaluation: {{}}\n")
    code, out, err = cli("eval", str(recipe), "--max-episodes", "0")
    assert code == 0 and "holds no tasks" not in err, err


def test_export_release_round_trip(task_set: Path, tmp_path: Path) -> None:
    out = tmp_path / "release"
    result = CliRunner().invoke(build_cli(), ["tasks", "export", str(task_set), str(out), "--json"])
    assert result.exit_code == 0, result.output
    public = out / "toy-binary" / "prepared" / "public"
    assert {p.name for p in public.iterdir()} == {"description.md", "train.csv", "test.csv",
                                                  "sample_submission.csv", "answer.csv", "evaluator.py"}
    released = {t.id: t for t in _source("sandmle-release", path=out).tasks()}
    ours = {t.id: t for t in _source("directory", path=task_set).tasks()}
    assert released.keys() == ours.keys()
    for tid, task in released.items():
        assert task.format == "sandmle-release" and task.lower_is_better == ours[tid].lower_is_better
    grader = DefaultGrader()  # one instance: the sample submission is graded once per task
    for tid, task in released.items():
        if tid != "toy-regression":  # each evaluator.py run costs ~2 s of imports: grade one task
            continue
        visible = {p.name for p in task.public_files()}
        assert "answer.csv" not in visible and "evaluator.py" not in visible
        answers = pd.read_csv(ours[tid].answers_path)
        sub = tmp_path / f"{tid}.csv"
        answers.assign(**{c: answers[c] * 0.9 for c in ours[tid].target_columns}).to_csv(sub, index=False)
        a, b = grader.grade(ours[tid], sub), grader.grade(task, sub)  # b runs evaluator.py
        assert a.valid_submission and a.score == b.score and a.tier == b.tier, (a, b)
        assert a.beats_sample_submission == b.beats_sample_submission
    bad = grader.grade(released["toy-regression"], released["toy-regression"].public_dir / "test.csv")
    assert not bad.valid_submission and "missing columns" in bad.reason


def test_release_answers_never_reach_a_real_sandbox(task_set: Path, tmp_path: Path) -> None:
    """The real ``local`` sandbox, opened on a release task, lists no answer.csv / evaluator.py."""
    from sandmle.graders.sources import export_release, load_release_task

    task = load_release_task(export_release(_source("directory", path=task_set / "binary").tasks()[0],
                                            tmp_path))
    sandbox = get_registry().create("sandboxes", "local", {})

    async def listing() -> list[str]:
        try:
            async with await sandbox.open(task) as session:
                files = await session.list_files(".")
                res = await session.exec("import os; print(sorted(os.listdir('.')))", timeout=30)
                return files + [res.stdout_tail]
        finally:
            await sandbox.shutdown()

    seen = " ".join(asyncio.run(listing()))
    assert "sample_submission.csv" in seen
    assert "answer.csv" not in seen and "evaluator.py" not in seen


def _write_competition(root: Path, comp_id: str, n_board: int, rng: np.random.Generator) -> Path:
    comp = root / comp_id
    public, private = comp / "prepared/public", comp / "prepared/private"
    public.mkdir(parents=True)
    private.mkdir(parents=True)
    ids = [f"img_{i:03d}" for i in range(30)]
    truth = (rng.uniform(size=30) > 0.5).astype(int)
    pd.DataFrame({"id": ids, "has_cactus": truth}).to_csv(private / "test.csv", index=False)
    pd.DataFrame({"id": ids, "has_cactus": 0.5}).to_csv(public / "sample_submission.csv", index=False)
    (comp / "description.md").write_text("# Aerial Cactus Identification\n")
    (comp / "config.yaml").write_text(yaml.safe_dump({
        "id": comp_id, "name": "Aerial Cactus Identification", "competition_type": "simple",
        "awards_medals": True, "dataset": {"answers": f"{comp_id}/prepared/private/test.csv",
                                           "sample_submission": f"{comp_id}/prepared/public/sample_submission.csv"},
        "grader": {"name": "auc-roc", "grade_fn": f"mlebench.competitions.{comp_id}.grade:grade"}}))
    board = np.round(np.linspace(1.0, 0.5, n_board), 5)  # best first, higher is better
    pd.DataFrame({"teamId": range(n_board), "score": board}).to_csv(comp / "leaderboard.csv", index=False)
    return comp


def test_mlebench_source_uses_mlebench_rules(tmp_path: Path) -> None:
    assert len(lite_competitions()) == 22
    comp = _write_competition(tmp_path, "aerial-cactus-identification", 120, np.random.default_rng(0))
    (task,) = _source("mlebench", path=tmp_path).tasks()
    assert (task.metric, task.lower_is_better, task.format) == ("roc_auc", False, "mlebench")
    assert task.description.startswith("# Aerial")
    answers = pd.read_csv(comp / "prepared/private/test.csv")
    answers.assign(has_cactus=answers["has_cactus"].astype(float)).to_csv(tmp_path / "perfect.csv", index=False)
    g = DefaultGrader().grade(task, tmp_path / "perfect.csv")
    board = pd.read_csv(comp / "leaderboard.csv")["score"].tolist()
    assert g.gold_threshold == board[9] and g.silver_threshold == board[23] and g.bronze_threshold == board[47]
    assert g.gold_medal and g.human_rank == 1.0
    sample = DefaultGrader().grade(task, task.public_dir / "sample_submission.csv")
    assert sample.valid_submission and sample.score == 0.5 and sample.tier == "valid"


def test_mlebench_unknown_competition_needs_a_metric(tmp_path: Path) -> None:
    _write_competition(tmp_path, "my-private-comp", 10, np.random.default_rng(1))
    with pytest.raises(TaskError, match="no metric known"):
        _source("mlebench", path=tmp_path).tasks()
    (task,) = _source("mlebench", path=tmp_path, metrics={"my-private-comp": "auc"}).tasks()
    assert task.metric == "roc_auc"


def test_mledojo_human_rank_averages_public_and_private(tmp_path: Path) -> None:
    comp = tmp_path / "spooky-author-identification"
    (comp / "data/public").mkdir(parents=True)
    (comp / "data/private").mkdir(parents=True)
    (comp / "info").mkdir()
    ids = [f"id{i}" for i in range(6)]
    onehot = np.eye(3, dtype=int)[[0, 1, 2, 0, 1, 2]]
    pd.DataFrame(onehot, columns=["EAP", "HPL", "MWS"]).assign(id=ids)[["id", "EAP", "HPL", "MWS"]].to_csv(
        comp / "data/private/test_answer.csv", index=False)
    pd.DataFrame({"id": ids, "EAP": 1 / 3, "HPL": 1 / 3, "MWS": 1 / 3}).to_csv(
        comp / "data/public/sample_submission.csv", index=False)
    pd.DataFrame({"rank": [1, 2, 3, 4], "score": [0.2, 0.5, 1.0, 1.2]}).to_csv(
        comp / "info/private_leaderboard.csv", index=False)
    pd.DataFrame({"rank": [1, 2], "score": [0.1, 1.05]}).to_csv(comp / "info/public_leaderboard.csv", index=False)
    (task,) = _source("mledojo", path=tmp_path).tasks()
    g = DefaultGrader().grade(task, task.public_dir / "sample_submission.csv")
    assert g.raw_score == pytest.approx(np.log(3), abs=1e-12)  # uniform guess: log loss ln 3 = 1.0986
    assert g.score == round(np.log(3), 5)  # reported at MLE-bench's precision
    # private: first score it matches or beats (lower is better) is 1.2 -> p=4 of 4 -> 0.25;
    # public: beats none of [0.1, 1.05] -> p=3 -> 0.0
    assert g.human_rank == pytest.approx((0.25 + 0.0) / 2)


def test_grade_cli_json_and_table(task_set: Path, tmp_path: Path) -> None:
    task_dir = task_set / "regression"
    answers = pd.read_csv(task_dir / "prepared/private/answers.csv")
    answers.to_csv(tmp_path / "sub.csv", index=False)
    out = CliRunner().invoke(build_cli(), ["grade", str(task_dir), str(tmp_path / "sub.csv"), "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["grade"]["tier"] == "gold" and data["reward"]["total"] == pytest.approx(1.0)
    out = CliRunner().invoke(build_cli(), ["grade", str(task_dir), str(tmp_path / "missing.csv"), "--json"])
    data = json.loads(out.output)
    assert data["grade"]["valid_submission"] is False and data["reward"]["total"] == pytest.approx(0.1)
    table = CliRunner().invoke(build_cli(), ["grade", str(task_dir), str(tmp_path / "sub.csv")])
    assert table.exit_code == 0 and "gold_medal" in table.output
    bad = subprocess.run([sys.executable, "-m", "sandmle.core.cli", "grade", str(tmp_path), str(tmp_path / "sub.csv")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "not a task folder" in bad.stderr and "Traceback" not in bad.stderr
