"""Generator ``linear-tasks``: small synthetic binary classification tasks whose label is a noisy
linear rule of a few numeric features. Each candidate is verified before it is kept: a reference
solution must clearly beat the majority class, else the candidate is rejected with its reason."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from sandmle.core import ComponentConfig, Generator, Task, hookimpl


class LinearTasksConfig(ComponentConfig):
    """Shape of the generated tasks."""

    rows: int = Field(120, ge=20, description="training rows (micro-scale: tens to hundreds)")
    test_rows: int = Field(80, ge=10)
    features: int = Field(4, ge=1, le=50)
    noise: float = Field(0.3, ge=0, description="label noise: std of the gaussian added to the score")
    min_gain: float = Field(0.05, ge=0, description="reference accuracy must beat the majority class by this")


@dataclass
class Rejected:
    """A candidate that failed verification (``generate`` yields these next to accepted Tasks)."""

    task_id: str
    reason: str
    accepted: bool = False
    path: str | None = None


class LinearTasks(Generator):
    def __init__(self, config: LinearTasksConfig):
        self.config = config

    def generate(self, out_dir: Path, n: int, *, seed: int = 0, seeds: Sequence[str] | None = None,
                 sandbox: Any = None) -> Iterator[Task | Rejected]:
        """Yield up to ``n`` accepted tasks (and the rejections on the way) into ``out_dir``.
        Tasks already in ``out_dir`` are yielded again, not regenerated (resumable). ``seeds``
        and ``sandbox`` are not used: this generator has no seed tasks and verifies in-process."""
        from sandmle.core.task import load_task

        out_dir = Path(out_dir)
        accepted, index = 0, 0
        while accepted < n and index < 3 * n:  # give up after 3 candidates per wanted task
            task_id = f"linear-{seed}-{index:04d}"
            root = out_dir / task_id
            index += 1
            if (root / "task.yaml").is_file():
                accepted += 1
                yield load_task(root)
                continue
            outcome = self._candidate(root, task_id, seed * 100_003 + index)
            accepted += isinstance(outcome, Task)
            yield outcome

    def _candidate(self, root: Path, task_id: str, rng_seed: int) -> Task | Rejected:
        import numpy as np
        import pandas as pd
        from sklearn.linear_model import LogisticRegression

        from sandmle.core import MedalThresholds
        from sandmle.graders.task_writer import write_task

        cfg = self.config
        rng = np.random.default_rng(rng_seed)
        n = cfg.rows + cfg.test_rows
        x = rng.normal(size=(n, cfg.features))
        y = (x @ rng.normal(size=cfg.features) + rng.normal(scale=cfg.noise, size=n) > 0).astype(int)
        columns = [f"x{i}" for i in range(cfg.features)]
        frame = pd.DataFrame(x, columns=columns).round(4).assign(id=range(n), label=y)[["id", *columns, "label"]]
        train, test = frame.iloc[: cfg.rows], frame.iloc[cfg.rows:]
        majority = max(test["label"].mean(), 1 - test["label"].mean())
        reference = LogisticRegression().fit(train[columns], train["label"]).score(test[columns], test["label"])
        if reference < majority + cfg.min_gain:  # verification: the task must be learnable
            return Rejected(task_id, f"reference accuracy {reference:.3f} does not beat the majority "
                                     f"class ({majority:.3f}) by {cfg.min_gain}")
        if reference > 0.99:  # solved outright: no room left between the medals
            return Rejected(task_id, f"reference accuracy {reference:.3f}: too easy to rank solutions")
        bronze = majority + 0.8 * (reference - majority)
        thresholds = MedalThresholds(gold=reference + 0.5 * (1 - reference), silver=reference,
                                     bronze=bronze, median=majority + 0.4 * (reference - majority))
        return write_task(
            root, task_id=task_id, train=train, test=test.drop(columns="label"), answers=test[["id", "label"]],
            sample_submission=test[["id"]].assign(label=int(train["label"].mean() >= 0.5)),
            description=f"# {task_id}\n\nPredict `label` (0 or 1) from {', '.join(columns)}. Metric: accuracy.\n",
            metric="accuracy", lower_is_better=False, id_column="id", target_columns=["label"],
            thresholds=thresholds, provenance={"generator": "linear-tasks", "rng_seed": rng_seed,
                                               "reference_accuracy": reference})


@hookimpl
def register_generators(register):
    register("linear-tasks", LinearTasks, config=LinearTasksConfig,
             description="synthetic binary tasks from a noisy linear rule, verified by a reference model")
