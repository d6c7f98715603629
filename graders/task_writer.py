"""Writing tasks in sandmle's on-disk format (:mod:`sandmle.core.task` reads them).

Lives with the graders because a written task carries its own ``evaluator.py``, generated from
the graders' metric code, so the task can be scored without sandmle installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from sandmle.core.errors import TaskError
from sandmle.core.task import PRIVATE, PUBLIC, MedalThresholds, Task, load_task

from .evaluator import evaluator_source

if TYPE_CHECKING:
    import pandas as pd


def _task_meta(task: Task) -> dict[str, Any]:
    rel = lambda p: str(Path(p).relative_to(task.root)) if p is not None else None  # noqa: E731
    return {"id": task.id, "metric": task.metric, "lower_is_better": task.lower_is_better,
            "id_column": task.id_column, "target_columns": list(task.target_columns),
            "modality": task.modality, "task_type": task.task_type,
            "thresholds": task.thresholds.model_dump() if task.thresholds else None,
            "leaderboard": task.leaderboard, "answers": rel(task.answers_path),
            "evaluator": rel(task.evaluator_path), "provenance": task.provenance}


def _write_meta_and_evaluator(task: Task, extra_meta: dict[str, Any] | None = None) -> None:
    if task.evaluator_path is not None and task.answers_path is not None:
        task.evaluator_path.parent.mkdir(parents=True, exist_ok=True)
        th = task.thresholds.model_dump() if task.thresholds else {}
        task.evaluator_path.write_text(evaluator_source(
            task.metric, task.target_columns, task.id_column, th, task.lower_is_better,
            answers_file=str(Path(task.answers_path).relative_to(task.evaluator_path.parent))), encoding="utf-8")
    meta = _task_meta(task)
    if task.public_leaderboard:
        meta["public_leaderboard"] = task.public_leaderboard
    # Writers may add keys of their own (the generator's layout and difficulty figures); the
    # task's own fields always win, provenance stays last.
    prov = meta.pop("provenance")
    meta.update({k: v for k, v in (extra_meta or {}).items() if k not in meta})
    meta["provenance"] = prov
    (task.root / "task.yaml").write_text(yaml.safe_dump(meta, sort_keys=False), encoding="utf-8")


def write_task(root: Path, *, task_id: str, train: "pd.DataFrame", test: "pd.DataFrame",
               answers: "pd.DataFrame", sample_submission: "pd.DataFrame", description: str, metric: str,
               lower_is_better: bool, id_column: str, target_columns: list[str],
               modality: str = "tabular", task_type: str = "classification",
               thresholds: MedalThresholds | None = None, leaderboard: list[float] | None = None,
               provenance: dict[str, Any] | None = None,
               extra_public_files: dict[str, bytes] | None = None,
               extra_meta: dict[str, Any] | None = None) -> Task:
    """Write a task in the layout above (answers and ``evaluator.py`` under ``prepared/private/``)
    and return it loaded and validated. ``extra_meta`` adds keys of the writer's own to
    ``task.yaml`` (they never replace the task's fields)."""
    root = Path(root)
    public, private = root / PUBLIC, root / PRIVATE
    public.mkdir(parents=True, exist_ok=True)
    private.mkdir(parents=True, exist_ok=True)
    train.to_csv(public / "train.csv", index=False)
    test.to_csv(public / "test.csv", index=False)
    sample_submission.to_csv(public / "sample_submission.csv", index=False)
    (public / "description.md").write_text(description, encoding="utf-8")
    inside, made = public.resolve(), set()  # image and sound tasks write hundreds of files: resolve once
    for name, data in (extra_public_files or {}).items():
        target = (public / name).resolve()
        if not target.is_relative_to(inside):
            raise TaskError(f"extra public file {name!r} would land outside {public}")
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        target.write_bytes(data)
    answers.to_csv(private / "answers.csv", index=False)
    try:
        task = Task(id=task_id, root=root, public_dir=public, private_dir=private, metric=metric,
                    lower_is_better=lower_is_better, id_column=id_column, target_columns=list(target_columns),
                    modality=modality, task_type=task_type, thresholds=thresholds, leaderboard=leaderboard,
                    answers_path=private / "answers.csv", evaluator_path=private / "evaluator.py",
                    provenance=provenance or {})
    except ValidationError as exc:
        raise TaskError(f"task {task_id!r}: {exc}") from exc
    _write_meta_and_evaluator(task, extra_meta)
    return load_task(root)


def update_thresholds(task: Task, thresholds: MedalThresholds | None,
                      leaderboard: list[float] | None = None, extra_meta: dict[str, Any] | None = None) -> Task:
    """Set a task's thresholds (and reference leaderboard), rewrite task.yaml + evaluator.py, reload.

    Keys of ``task.yaml`` that are not task fields (a writer's ``extra_meta``) are kept, updated
    by ``extra_meta`` where given."""
    updated = task.model_copy(update={"thresholds": thresholds,
                                      "leaderboard": leaderboard if leaderboard is not None else task.leaderboard})
    if thresholds is not None and not thresholds.is_monotone(task.lower_is_better):
        raise TaskError(f"task {task.id!r}: thresholds {thresholds.model_dump()} are not strictly monotone")
    kept = _extra_keys(task.root / "task.yaml")
    _write_meta_and_evaluator(updated, {**kept, **(extra_meta or {})})
    return load_task(task.root)


def _extra_keys(path: Path) -> dict[str, Any]:
    """The keys of an existing ``task.yaml`` that are not task fields."""
    try:
        meta = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    if not isinstance(meta, dict):
        return {}
    own = {"id", "metric", "lower_is_better", "id_column", "target_columns", "modality", "task_type",
           "thresholds", "leaderboard", "answers", "evaluator", "provenance", "public_leaderboard"}
    return {k: v for k, v in meta.items() if k not in own}
