"""load_task / write_task / update_thresholds: the on-disk layout and its validation errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from sandmle.core.errors import TaskError
from sandmle.core.hookspecs import hookimpl
from sandmle.core.plugins import get_manager
from sandmle.core.task import MedalThresholds, load_task
from sandmle.graders.task_writer import update_thresholds
from sandmle.graders.toy import make_toy_task


@pytest.fixture
def task_dir(tmp_path: Path) -> Path:
    make_toy_task(tmp_path / "t", "proba")
    return tmp_path / "t"


def test_write_task_layout_and_round_trip(task_dir: Path) -> None:
    task = load_task(task_dir)
    assert task.id == "toy-proba" and task.metric == "log_loss" and task.lower_is_better
    assert task.target_columns == ["p_a", "p_b", "p_c"]
    assert sorted(p.name for p in task.public_files()) == ["description.md", "sample_submission.csv",
                                                           "test.csv", "train.csv"]
    assert task.answers_path == task_dir / "prepared/private/answers.csv"
    assert task.evaluator_path == task_dir / "prepared/private/evaluator.py" and task.evaluator_path.is_file()
    meta = yaml.safe_load((task_dir / "task.yaml").read_text())
    assert set(meta) >= {"id", "metric", "lower_is_better", "id_column", "target_columns", "modality",
                         "task_type", "thresholds", "leaderboard", "answers", "evaluator", "provenance"}


def test_update_thresholds_rewrites_yaml_and_evaluator(task_dir: Path) -> None:
    th = MedalThresholds(gold=0.1, silver=0.3, bronze=0.5, median=0.8)
    task = update_thresholds(load_task(task_dir), th, leaderboard=[0.1, 0.3, 0.9])
    assert task.thresholds == th and task.leaderboard == [0.1, 0.3, 0.9]
    assert "'gold': 0.1" in task.evaluator_path.read_text()
    with pytest.raises(TaskError, match="not strictly monotone"):
        update_thresholds(task, MedalThresholds(gold=0.5, silver=0.3, bronze=0.5, median=0.8))


def _edit(task_dir: Path, **changes: object) -> None:
    meta = yaml.safe_load((task_dir / "task.yaml").read_text())
    meta.update(changes)
    (task_dir / "task.yaml").write_text(yaml.safe_dump(meta))


@pytest.mark.parametrize("breakage, message", [
    (lambda d: (d / "task.yaml").unlink(), "no task.yaml"),
    (lambda d: (d / "task.yaml").write_text("id: [unclosed"), "invalid YAML"),
    (lambda d: (d / "prepared/public/test.csv").unlink(), "missing file"),
    (lambda d: (d / "prepared/private/answers.csv").unlink(), "missing answers"),
    (lambda d: (d / "prepared/private/evaluator.py").unlink(), "missing evaluator"),
    (lambda d: shutil.rmtree(d / "prepared/public"), "does not exist"),
    (lambda d: _edit(d, target_columns=["p_a", "p_z"]), "lacks column(s) ['p_z']"),
    (lambda d: _edit(d, id_column="row"), "lacks column(s) ['row'"),
    (lambda d: _edit(d, thresholds={"gold": 0.9, "silver": 0.5, "bronze": 0.3, "median": 0.1}),
     "not strictly monotone (gold < silver"),
    (lambda d: _edit(d, modality="smell"), "modality"),
    (lambda d: _edit(d, metric=None, id=None) or _drop(d, "metric"), "missing key(s) ['metric']"),
])
def test_load_task_errors(task_dir: Path, breakage, message: str) -> None:
    breakage(task_dir)
    with pytest.raises(TaskError) as info:
        load_task(task_dir)
    assert message in str(info.value)


def _drop(task_dir: Path, key: str) -> None:
    meta = yaml.safe_load((task_dir / "task.yaml").read_text())
    meta.pop(key)
    meta["id"] = "x"
    (task_dir / "task.yaml").write_text(yaml.safe_dump(meta))


def test_extra_public_files_cannot_escape(tmp_path: Path) -> None:
    from sandmle.graders.toy import toy_frames
    from sandmle.graders.task_writer import write_task

    kwargs = dict(task_id="x", description="d", metric="rmse", lower_is_better=True, id_column="id",
                  target_columns=["y"], **toy_frames("regression"))
    task = write_task(tmp_path / "ok", extra_public_files={"images/a.bin": b"\x00\x01"}, **kwargs)
    assert (task.public_dir / "images/a.bin").read_bytes() == b"\x00\x01"
    with pytest.raises(TaskError, match="outside"):
        write_task(tmp_path / "bad", extra_public_files={"../../evil.txt": b"x"}, **kwargs)


class PinballPlugin:
    """A third-party plugin that scores one metric of its own (through the metric hook)."""

    @staticmethod
    @hookimpl
    def metric_lower_is_better(metric: str) -> bool | None:
        return True if metric == "pinball_loss" else None


def test_a_plugins_metric_loads_and_gives_the_direction(task_dir: Path) -> None:
    """core knows no metric: a task's direction and the unknown-metric check come from the
    plugins' ``metric_lower_is_better`` hook, so a plugin's metric counts like a built-in one."""
    meta = yaml.safe_load((task_dir / "task.yaml").read_text())
    meta.pop("lower_is_better")
    (task_dir / "task.yaml").write_text(yaml.safe_dump({**meta, "metric": "pinball_loss"}))
    with pytest.raises(TaskError, match="unknown metric 'pinball_loss'"):
        load_task(task_dir)
    manager = get_manager()
    manager.register_plugin(PinballPlugin, "pinball")
    try:
        assert load_task(task_dir).lower_is_better is True
    finally:
        manager.pm.unregister(name="pinball")
    (task_dir / "task.yaml").write_text(yaml.safe_dump({**meta, "metric": "accuracy", "thresholds": None}))
    assert load_task(task_dir).lower_is_better is False  # the built-in graders answer for theirs
