"""Small realistic tasks for tests and conformance checks, written with :func:`write_task`.

``make_toy_task(root, kind)`` builds a 40-row task whose hidden answers follow a simple rule,
with a constant sample submission and thresholds that a good model can reach.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sandmle.core.task import MedalThresholds, Task

from .task_writer import write_task

# kind: (metric, task_type, thresholds)
KINDS: dict[str, tuple[str, str, MedalThresholds]] = {
    "binary": ("roc_auc", "binary", MedalThresholds(gold=0.95, silver=0.9, bronze=0.85, median=0.7)),
    "multiclass": ("accuracy", "multiclass", MedalThresholds(gold=0.9, silver=0.8, bronze=0.7, median=0.5)),
    "proba": ("log_loss", "multiclass", MedalThresholds(gold=0.2, silver=0.4, bronze=0.6, median=0.9)),
    "regression": ("rmse", "regression", MedalThresholds(gold=0.5, silver=1.0, bronze=1.5, median=2.5)),
}


def toy_frames(kind: str, n_train: int = 60, n_test: int = 40, seed: int = 0) -> dict[str, pd.DataFrame]:
    """train, test, answers and sample_submission frames for one toy task kind."""
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    frame = pd.DataFrame({"id": np.arange(1000, 1000 + n), "x1": x1.round(4), "x2": x2.round(4)})
    if kind == "binary":
        targets = pd.DataFrame({"target": (x1 + 0.3 * rng.normal(size=n) > 0).astype(int)})
        sample = {"target": 0.5}
    elif kind == "multiclass":
        targets = pd.DataFrame({"label": np.array(["cat", "dog", "fox"])[np.digitize(x1, [-0.5, 0.5])]})
        sample = {"label": "cat"}
    elif kind == "proba":
        cls = np.digitize(x1, [-0.5, 0.5])
        targets = pd.DataFrame(np.eye(3, dtype=int)[cls], columns=["p_a", "p_b", "p_c"])
        sample = {c: 1 / 3 for c in targets.columns}
    elif kind == "regression":
        targets = pd.DataFrame({"y": (3 * x1 - x2 + 0.2 * rng.normal(size=n)).round(4)})
        sample = {"y": 0.0}
    else:
        raise ValueError(f"unknown toy kind {kind!r}; choose from {sorted(KINDS)}")
    full = pd.concat([frame, targets], axis=1)
    train, test = full.iloc[:n_train].reset_index(drop=True), full.iloc[n_train:].reset_index(drop=True)
    answers = test[["id", *targets.columns]]
    return {"train": train, "test": test[["id", "x1", "x2"]], "answers": answers,
            "sample_submission": answers.assign(**sample)}


def make_toy_task(root: Path, kind: str = "binary", seed: int = 0, task_id: str | None = None) -> Task:
    """Write a toy task of ``kind`` (binary, multiclass, proba, regression) under ``root``."""
    metric, task_type, thresholds = KINDS[kind]
    frames = toy_frames(kind, seed=seed)
    targets = [c for c in frames["answers"].columns if c != "id"]
    from .metrics import get_metric

    return write_task(Path(root), task_id=task_id or f"toy-{kind}", description=f"# Toy {kind} task\n",
                      metric=metric, lower_is_better=get_metric(metric).lower_is_better, id_column="id",
                      target_columns=targets, modality="tabular", task_type=task_type, thresholds=thresholds,
                      leaderboard=None, provenance={"source": "toy", "seed": seed}, **frames)
