"""Every MLE-bench-lite competition of ``graders/data/mlebench_lite.yaml`` loads from a folder shaped
as MLE-bench prepares it (config.yaml's dataset paths, ``mlebench/registry.py:92-100`` at 783b15a)
and as MLE-Dojo prepares it (``prepare/mle.py:55-101`` at 667a8fd), with tiny generated data in
each competition's own columns; a perfect submission grades gold and the sample submission valid.

The data imitate what each competition's ``prepare.py`` writes: the sample submission's name and
folder (``sampleSubmission.csv``, ``sample_submission_null.csv``, ``prepared/private/`` for text
normalization), detecting-insults' ``Insult,Date,Comment`` columns keyed by the comment, jigsaw's
``-1`` rows, text tokens that pandas would read as NaN, labels written as floats.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from sandmle.core.errors import TaskError
from sandmle.core.plugins import get_registry
from sandmle.core.task import Task
from sandmle.graders.grader import DefaultGrader
from sandmle.plugins.mlebench import lite_competitions

N = 12
TOKENS = ["NA", "null", "None", "nan", "hello", "12", "twelve", "", "N/A", "x", "y", "z"]
HIGHER_BOARD = [0.99, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5, 0.45]
LOWER_BOARD = [0.001, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 0.9, 1.2, 1.5]


def _targets(info: dict[str, Any]) -> list[str]:
    # dog-breed (120 breeds) and leaf (99 species) take their classes from the sample submission
    return info.get("target_columns") or ["class_a", "class_b", "class_c"]


def _frames(comp_id: str, info: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(answers, sample submission, perfect submission) in the competition's columns."""
    metric, id_col, cols = info["metric"], info["id_column"], _targets(info)
    ids: list[Any] = list(range(1, N + 1)) if id_col in ("id", "Id") else [f"{comp_id[:4]}_{i}" for i in range(N)]
    if comp_id.startswith("text-normalization"):
        ids = [f"0_{i}" for i in range(N)]
    if comp_id.startswith("detecting-insults"):
        ids = [f"comment {i % (N - 1)}" for i in range(N)]  # the comment text is the key; one repeats
    i = np.arange(N)
    if metric in ("roc_auc", "log_loss"):
        truth = {cols[0]: i % 2}
        sample = {cols[0]: 0.5 if metric == "log_loss" else 0}
        perfect = {cols[0]: (i % 2).astype(float)}
    elif metric == "qwk":
        truth, sample, perfect = {cols[0]: i % 5}, {cols[0]: 0}, {cols[0]: i % 5}
    elif metric == "accuracy":
        truth, sample = {cols[0]: 1 + i % 7}, {cols[0]: 2}
        perfect = {cols[0]: (1 + i % 7).astype(float)}  # written "3.0": compared as numbers
    elif metric in ("rmse", "mean_column_rmsle"):
        rng = np.random.default_rng(len(comp_id))
        truth = {c: rng.uniform(0.05, 3.0, size=N).round(4) for c in cols}
        sample, perfect = {c: 1.0 for c in cols}, dict(truth)
    elif metric == "multi_log_loss" or (metric == "mean_column_auc" and comp_id.startswith("plant")):
        onehot = np.eye(len(cols), dtype=int)[i % len(cols)]
        truth = {c: onehot[:, j] for j, c in enumerate(cols)}
        sample = {c: 1 / len(cols) for c in cols}
        perfect = {c: onehot[:, j].astype(float) for j, c in enumerate(cols)}
    elif metric == "mean_column_auc":
        labels = np.array([[(r + j) % 2 for j in range(len(cols))] for r in range(N)])
        if comp_id.startswith("jigsaw"):
            labels[-2:] = -1  # Kaggle's "not scored" rows, kept in the answers
        truth = {c: labels[:, j] for j, c in enumerate(cols)}
        sample = {c: 0.5 for c in cols}
        perfect = {c: np.where(labels[:, j] < 0, 0.5, labels[:, j]).astype(float) for j, c in enumerate(cols)}
    elif metric == "sequence_accuracy":
        truth, sample, perfect = {cols[0]: TOKENS}, {cols[0]: "x"}, {cols[0]: TOKENS}
    else:
        raise AssertionError(f"no generator for metric {metric} ({comp_id})")
    base = pd.DataFrame({id_col: ids})
    answers, sample_df, perfect_df = base.assign(**truth), base.assign(**sample), base.assign(**perfect)
    for extra in info.get("passthrough", []):  # detecting-insults: Insult, Date, Comment
        answers, sample_df, perfect_df = (f.assign(**{extra: "20120618192155Z"}) for f in (answers, sample_df, perfect_df))
    if comp_id.startswith("detecting-insults"):
        order = ["Insult", "Date", "Comment"]
        answers = answers[order].assign(Usage="PrivateTest")
        sample_df, perfect_df = sample_df[order], perfect_df[order]
    return answers, sample_df, perfect_df


def _write(frame: pd.DataFrame, path: Path, text: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # text normalization's prepare.py writes quoted CSVs (csv.QUOTE_NONNUMERIC)
    frame.to_csv(path, index=False, quoting=csv.QUOTE_NONNUMERIC if text else csv.QUOTE_MINIMAL)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, pd.DataFrame]]:
    """MLE-bench layout: competitions/<id>/{config.yaml, description.md, leaderboard.csv} and the
    prepared data under data/, at the paths each competition's config names."""
    root = tmp_path_factory.mktemp("mlebench")
    perfect: dict[str, pd.DataFrame] = {}
    for comp_id, info in lite_competitions().items():
        answers, sample, perfect[comp_id] = _frames(comp_id, info)
        text = info["metric"] == "sequence_accuracy"
        _write(answers, root / "data" / info["answers"], text)
        _write(sample, root / "data" / info["sample_submission"], text)
        (root / "data" / comp_id / "prepared" / "public").mkdir(parents=True, exist_ok=True)
        comp = root / "competitions" / comp_id
        comp.mkdir(parents=True)
        (comp / "description.md").write_text(f"# {comp_id}\n")
        (comp / "config.yaml").write_text(yaml.safe_dump({
            "id": comp_id, "name": comp_id, "competition_type": "simple", "awards_medals": True,
            "description": f"mlebench/competitions/{comp_id}/description.md",
            "dataset": {"answers": info["answers"], "sample_submission": info["sample_submission"]},
            "grader": {"name": info["metric"], "grade_fn": f"mlebench.competitions.{comp_id}.grade:grade"},
            "preparer": f"mlebench.competitions.{comp_id}.prepare:prepare"}))
        board = LOWER_BOARD if info["lower_is_better"] else HIGHER_BOARD
        pd.DataFrame({"teamId": range(len(board)), "score": board}).to_csv(comp / "leaderboard.csv", index=False)
    return root, perfect


def test_the_lite_list_is_mlebench_low_split() -> None:
    # experiments/splits/low.txt at 783b15a: 22 competitions
    assert len(lite_competitions()) == 22
    for comp_id, info in lite_competitions().items():
        assert info["answers"].startswith(f"{comp_id}/prepared/private/"), comp_id
        assert info["sample_submission"].startswith(f"{comp_id}/prepared/"), comp_id


def _grade_all(tasks: list[Task], perfect: dict[str, pd.DataFrame], tmp: Path) -> dict[str, tuple]:
    grader = DefaultGrader()
    out = {}
    for task in tasks:
        sub = tmp / f"{task.id}.csv"
        _write(perfect[task.id], sub, task.metric == "sequence_accuracy")
        out[task.id] = (grader.grade(task, sub), grader.grade(task, task.sample_submission_path))
    return out


def test_every_lite_competition_loads_and_grades_from_mlebench_layout(built, tmp_path: Path) -> None:
    root, perfect = built
    tasks = get_registry().create("task_sources", "mlebench",
                                  {"path": root / "competitions", "data_dir": root / "data"}).tasks()
    assert sorted(t.id for t in tasks) == sorted(lite_competitions())
    for task in tasks:
        info = lite_competitions()[task.id]
        assert task.public_dir == root / "data" / task.id / "prepared" / "public", task.id
        assert task.sample_submission_path == root / "data" / info["sample_submission"]
        assert task.id_column == info["id_column"] and task.target_columns == _targets(info), task.id
        assert task.answers_path not in task.public_files() and (task.public_dir / "description.md").is_file()
    for comp_id, (best, sample) in _grade_all(tasks, perfect, tmp_path).items():
        assert best.valid_submission and best.gold_medal and best.human_rank == 1.0, (comp_id, best.reason, best.score)
        assert sample.valid_submission, (comp_id, sample.reason)
        assert not sample.gold_medal and best.beats_sample_submission, comp_id


def test_mlebench_data_dir_with_the_competitions_folder_apart(built, tmp_path: Path) -> None:
    """MLE-bench's own split: prepared data in its data dir, config.yaml / leaderboard.csv in the
    package's ``mlebench/competitions`` (registry.py:81-100)."""
    root, perfect = built
    source = get_registry().create("task_sources", "mlebench", {
        "path": root / "data", "competitions_dir": root / "competitions",
        "competitions": ["random-acts-of-pizza", "denoising-dirty-documents"]})
    tasks = source.tasks()
    assert sorted(t.id for t in tasks) == ["denoising-dirty-documents", "random-acts-of-pizza"]
    for comp_id, (best, sample) in _grade_all(tasks, perfect, tmp_path).items():
        assert best.gold_medal and sample.valid_submission, (comp_id, sample.reason)
    lfs = tmp_path / "lfs" / "random-acts-of-pizza"
    lfs.mkdir(parents=True)
    (lfs / "leaderboard.csv").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 9\n")
    with pytest.raises(TaskError, match="git lfs pull"):
        get_registry().create("task_sources", "mlebench", {
            "path": root / "data", "competitions_dir": tmp_path / "lfs", "competitions": ["random-acts-of-pizza"]}).tasks()
    with pytest.raises(TaskError, match="no leaderboard.csv"):
        get_registry().create("task_sources", "mlebench", {
            "path": root / "data", "competitions_dir": tmp_path / "none", "competitions": ["random-acts-of-pizza"]}).tasks()


def test_text_normalization_agent_folder_is_public(built) -> None:
    root, _ = built
    (task,) = get_registry().create("task_sources", "mlebench", {
        "path": root / "competitions", "data_dir": root / "data",
        "competitions": ["text-normalization-challenge-english-language"]}).tasks()
    assert task.public_dir.name == "public" and task.sample_submission_path.parent.name == "private"
    assert task.answers_path not in task.public_files() and task.sample_submission_path not in task.public_files()


def test_every_lite_competition_loads_from_mledojo_prepared_layout(built, tmp_path: Path) -> None:
    """MLE-Dojo copies both boards into data/private/ (prepare/mle.py:84-101) and keeps the answers in
    data/private/test_answer.csv (gym/interface.py:491); its boards are rank,score files."""
    src, perfect = built
    for comp_id, info in lite_competitions().items():
        comp = tmp_path / comp_id
        text = info["metric"] == "sequence_accuracy"
        answers = pd.read_csv(src / "data" / info["answers"], dtype=str if text else None, keep_default_na=not text)
        sample = pd.read_csv(src / "data" / info["sample_submission"], dtype=str if text else None,
                             keep_default_na=not text)
        _write(answers, comp / "data/private/test_answer.csv", text)
        _write(sample, comp / "data/public/sample_submission.csv", text)
        board = LOWER_BOARD if info["lower_is_better"] else HIGHER_BOARD
        for kind, rows in (("private", board), ("public", board[::2])):
            pd.DataFrame({"rank": range(1, len(rows) + 1), "score": rows}).to_csv(
                comp / f"data/private/{kind}_leaderboard.csv", index=False)
    tasks = get_registry().create("task_sources", "mledojo", {"path": tmp_path}).tasks()
    assert sorted(t.id for t in tasks) == sorted(lite_competitions())
    for task in tasks:
        assert len(task.leaderboard) == 12 and len(task.public_leaderboard) == 6
    for comp_id, (best, sample) in _grade_all(tasks, perfect, tmp_path / "subs").items():
        assert best.gold_medal and best.human_rank == 1.0, (comp_id, best.reason)
        assert sample.valid_submission and sample.human_rank is not None, (comp_id, sample.reason)


def test_competitions_returning_np_float64_round_the_numpy_way(built) -> None:
    """plant-pathology-2020-fgvc7's grade.py ends ``return np.mean(scores)`` (line 41) and ranzcr's
    ``score = np.average(roc_auc_scores)`` (line 30), at openai/mle-bench 783b15a: MLE-bench's
    ``round(score, 5)`` (grade_helpers.py:54) then rounds an np.float64, i.e. numpy's way. Every
    other lite grade.py returns an sklearn metric (a Python float with scikit-learn >= 1.5) or a
    sum of them (nomad2018), rounded by Python."""
    root, _ = built
    tasks = get_registry().create("task_sources", "mlebench",
                                  {"path": root / "competitions", "data_dir": root / "data"}).tasks()
    numpy_rounded = {t.id for t in tasks if t.provenance.get("score_rounding") == "numpy"}
    assert numpy_rounded == {"plant-pathology-2020-fgvc7", "ranzcr-clip-catheter-line-classification"}
