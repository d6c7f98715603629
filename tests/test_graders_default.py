"""The default grader on real tasks written by the toolkit: every invalid-submission reason,
medals and HumanRank in the Grade, the sample-submission baseline, and agreement with each
task's own ``evaluator.py`` (run as a subprocess, as SandMLE runs it)."""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sandmle.core.plugins import get_registry
from sandmle.core.task import Task
from sandmle.graders.task_writer import update_thresholds
from sandmle.graders.evaluator import run_evaluator
from sandmle.graders.grader import DefaultGrader, DefaultGraderConfig
from sandmle.graders.toy import make_toy_task


@pytest.fixture(scope="module")
def tasks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Task]:
    root = tmp_path_factory.mktemp("toy")
    return {k: make_toy_task(root / k, k) for k in ("binary", "multiclass", "proba", "regression")}


@pytest.fixture(scope="module")
def grader() -> DefaultGrader:
    return get_registry().create("graders", "default", {})


def _answers(task: Task) -> pd.DataFrame:
    return pd.read_csv(task.answers_path)


def _write(tmp: Path, name: str, frame: pd.DataFrame | str | bytes) -> Path:
    path = tmp / name
    if isinstance(frame, pd.DataFrame):
        frame.to_csv(path, index=False)
    elif isinstance(frame, str):
        path.write_text(frame)
    else:
        path.write_bytes(frame)
    return path


def _invalid_cases(task: Task) -> dict[str, tuple[object, str]]:
    a = _answers(task)
    return {
        "missing_column": (a[["id"]], "missing columns"),
        "extra_column": (a.assign(extra=1), "unexpected columns"),
        "too_few_rows": (a.iloc[:-1], "wrong row count"),
        "unknown_ids": (a.assign(id=a["id"] + 10_000), "ids do not match"),
        "duplicate_ids": (a.assign(id=[a["id"].iloc[0]] * len(a)), "duplicate ids"),
        "nan": (a.assign(target=np.nan), "NaN"),
        "inf": (a.assign(target=np.inf), "NaN or inf"),
        "non_numeric": (a.assign(target="high"), "non-numeric"),
        "out_of_range": (a.assign(target=1.5), "[0, 1]"),
        "empty_file": (b"", "empty"),
        "header_only": ("id,target\n", "no rows"),
        "not_csv": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "CSV"),
    }


def test_every_invalid_reason(tasks: dict[str, Task], grader: DefaultGrader, tmp_path: Path) -> None:
    task = tasks["binary"]
    for name, (content, needle) in _invalid_cases(task).items():
        g = grader.grade(task, _write(tmp_path, f"{name}.csv", content))
        assert not g.valid_submission, name
        assert g.submission_exists, name
        assert g.reason and needle in g.reason, f"{name}: {g.reason!r} lacks {needle!r}"
        assert g.score is None and g.tier == "invalid"
        assert g.gold_threshold == task.thresholds.gold  # thresholds reported even when invalid


def test_missing_and_huge_files(tasks: dict[str, Task], tmp_path: Path) -> None:
    task = tasks["regression"]
    g = DefaultGrader().grade(task, tmp_path / "nope.csv")
    assert not g.submission_exists and "not found" in g.reason
    assert "no submission" in DefaultGrader().grade(task, None).reason
    small = DefaultGrader(DefaultGraderConfig(max_bytes=100))
    g = small.grade(task, task.public_dir / "sample_submission.csv")
    assert not g.valid_submission and "too large" in g.reason


def test_perfect_submission_gets_gold_and_beats_sample(tasks: dict[str, Task], grader: DefaultGrader,
                                                       tmp_path: Path) -> None:
    for kind, task in tasks.items():
        g = grader.grade(task, _write(tmp_path, f"{kind}.csv", _answers(task)))
        assert g.valid_submission and g.gold_medal and g.any_medal and g.tier == "gold", (kind, g)
        assert g.beats_sample_submission is True
        s = grader.grade(task, task.public_dir / "sample_submission.csv")
        assert s.valid_submission and s.beats_sample_submission is False and not s.any_medal, (kind, s)


def test_medal_tiers_and_human_rank_from_reference_leaderboard(tasks: dict[str, Task], tmp_path: Path) -> None:
    task = update_thresholds(tasks["regression"], tasks["regression"].thresholds, leaderboard=[0.4, 0.9, 1.2, 2.0])
    a = _answers(task)
    rng = np.random.default_rng(1)
    noise = rng.normal(size=len(a))
    grader = DefaultGrader()
    for scale, tier in ((0.0, "gold"), (0.8, "silver"), (1.3, "bronze"), (2.0, "median"), (4.0, "valid")):
        sub = a.assign(y=a["y"] + scale * noise / np.sqrt(np.mean(noise ** 2)))  # RMSE == scale
        g = grader.grade(task, _write(tmp_path, f"s{scale}.csv", sub))
        assert g.score == pytest.approx(scale, abs=1e-5) and g.tier == tier, (scale, g)
    g = grader.grade(task, _write(tmp_path, "s1.csv", a.assign(y=a["y"] + noise / np.sqrt(np.mean(noise ** 2)))))
    assert g.human_rank == pytest.approx(2 / 4)  # RMSE 1.0 beats 1.2 and 2.0: p=3 of 4


def test_mlebench_rules_when_only_a_leaderboard_exists(tasks: dict[str, Task], tmp_path: Path) -> None:
    task = tasks["binary"].model_copy(update={"thresholds": None, "leaderboard": [1.0, 0.99, 0.95, 0.9, 0.8,
                                                                                   0.7, 0.6, 0.5, 0.4, 0.3]})
    g = DefaultGrader().grade(task, task.public_dir / "sample_submission.csv")  # AUC 0.5
    assert (g.gold_threshold, g.silver_threshold, g.bronze_threshold) == (1.0, 0.99, 0.9)
    assert g.median_threshold == pytest.approx(0.75) and not g.above_median
    assert g.human_rank == pytest.approx(3 / 10)


def _random_submissions(task: Task, rng: np.random.Generator) -> list[pd.DataFrame]:
    a = _answers(task)
    cols = task.target_columns
    if task.metric == "accuracy":
        return [a.assign(label=rng.choice(["cat", "dog", "fox"], size=len(a))) for _ in range(3)]
    if task.metric == "log_loss":
        subs = []
        for _ in range(3):
            p = rng.dirichlet(np.ones(3), size=len(a))
            subs.append(a.assign(**{c: p[:, j] for j, c in enumerate(cols)}))
        return subs
    if task.metric == "roc_auc":
        return [a.assign(target=rng.uniform(size=len(a)).round(3)) for _ in range(3)]
    return [a.assign(y=a["y"] + rng.normal(scale=s, size=len(a))) for s in (0.3, 1.1, 3.0)]


def _evaluate_in_process(evaluator: Path, submission: Path) -> dict:
    """Run the task's evaluator.py ``main()`` (its own code, loaded from the file) in this process:
    a subprocess per submission costs ~2 s of imports; one per task below covers the CLI path."""
    spec = importlib.util.spec_from_file_location(f"evaluator_{abs(hash(evaluator))}", evaluator)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out, argv = io.StringIO(), sys.argv
    sys.argv = ["evaluator.py", "--submission_path", str(submission)]
    try:
        with contextlib.redirect_stdout(out):
            module.main()
    finally:
        sys.argv = argv
    return json.loads(out.getvalue().strip().splitlines()[-1])


def test_grader_equals_evaluator_py(tasks: dict[str, Task], grader: DefaultGrader, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    for kind, task in tasks.items():
        subs = _random_submissions(task, rng) + [_answers(task).iloc[:-2]]  # the last one is invalid
        for i, sub in enumerate(subs):
            path = _write(tmp_path, f"{kind}{i}.csv", sub)
            run = run_evaluator if i == 0 else _evaluate_in_process  # one real subprocess per task
            g, ev = grader.grade(task, path), run(task.evaluator_path, path)
            assert g.raw_score == ev["score"], (kind, i, g.reason, ev)
            assert g.score == (None if ev["score"] is None else round(ev["score"], 5))
            assert ev["is_lower_better"] == task.lower_is_better
            assert ev["gold_threshold"] == g.gold_threshold and ev["median_threshold"] == g.median_threshold


def test_evaluator_is_self_contained(tasks: dict[str, Task]) -> None:
    src = tasks["binary"].evaluator_path.read_text()
    tree = ast.parse(src)
    imports = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imports |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imports <= {"argparse", "json", "os", "numpy", "pandas", "scipy", "sklearn"}, imports


def test_generated_tasks_grade_like_their_evaluator(tmp_path: Path) -> None:
    """Tasks from the procedural generator (real seeds, verified in the sandbox)."""
    gen = get_registry().create("generators", "procedural", {})
    list(gen.generate(tmp_path, 3, seed=5))
    loaded = get_registry().create("task_sources", "directory", {"path": tmp_path}).tasks()
    assert loaded
    grader = DefaultGrader()
    for task in loaded:
        for sub in (task.public_dir / "sample_submission.csv", task.answers_path):
            g, ev = grader.grade(task, sub), _evaluate_in_process(task.evaluator_path, sub)
            assert g.valid_submission and g.raw_score == ev["score"], (task.id, g.reason, ev)


def test_default_grader_passes_conformance(sandmle_conformance, tasks: dict[str, Task]) -> None:
    grader = get_registry().create("graders", "default", {})
    results = sandmle_conformance("graders", grader)  # on its own toy task
    assert len(results) >= 3
    sandmle_conformance("graders", grader, task=tasks["proba"])
