"""Shared helpers of the scaffold and backend tests: real generated tasks and a grading callback."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pandas as pd

from sandmle.core.records import Grade
from sandmle.core.task import Task

# One seed per modality and submission format (binary proba, labels, per-class probas, forecasts).
SEEDS = ["breast-cancer-binary", "descr-text-multiclass", "digits-image-multiclass", "co2-forecast",
         "wine-multiclass"]


def generate_tasks(out: Path, seeds: list[str] = SEEDS) -> list[Task]:
    """Generate one verified task per seed with the real ``procedural`` generator."""
    from sandmle.generators.writer import task_from_dir

    proc = subprocess.run([sys.executable, "-m", "sandmle.core.cli", "generate", "--n", str(len(seeds)),
                           "--out", str(out), "--seeds", ",".join(seeds), "--workers", "1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return [task_from_dir(p) for p in sorted(out.iterdir()) if (p / "task.yaml").exists()]


def grade(task: Task, path: Path | None) -> Grade:
    """The registered ``default`` grader when present, else the task's own metric + thresholds."""
    from sandmle.core.plugins import get_registry

    registry = get_registry()
    if "default" in registry.names("graders"):
        return registry.create("graders", "default").grade(task, path)
    from sandmle.graders.metrics import compute_score as score

    if path is None or not Path(path).is_file():
        return Grade(task_id=task.id, reason="submission file not found")
    try:
        value = score(task.metric, pd.read_csv(task.answers_path), pd.read_csv(path),
                      task.target_columns, task.id_column)
    except Exception as exc:  # noqa: BLE001
        return Grade(task_id=task.id, submission_exists=True, reason=str(exc))
    th = task.thresholds
    better = (lambda a, b: a <= b) if task.lower_is_better else (lambda a, b: a >= b)
    return Grade(task_id=task.id, score=value, valid_submission=True, submission_exists=True,
                 is_lower_better=task.lower_is_better, gold_threshold=th.gold, silver_threshold=th.silver,
                 bronze_threshold=th.bronze, median_threshold=th.median,
                 at_or_above_median=better(value, th.median), gold_medal=better(value, th.gold),
                 any_medal=better(value, th.bronze))


def run_episode(scaffold, backend, sandbox, task: Task, **kw):
    """Open a session, run one episode, return (trajectory, grade of the final submission)."""
    async def go():
        session = await sandbox.open(task)
        try:
            traj = await scaffold.run(task, backend, session, seed=0, score=lambda p: grade(task, p), **kw)
            g = grade(task, session.workdir / "submission.csv")
        finally:
            await session.close()
        return traj, g
    return asyncio.run(go())
