"""What a user watches while a trainer runs: a rich progress line per step (step, reward
mean/std, loss, tokens/s, ETA) and ``metrics.jsonl``, one JSON object per logged step.

Trainers call :meth:`TrainProgress.log` with whatever metrics they have; the names below are
the ones shown (others are only written to the JSONL and TensorBoard).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

METRICS_FILE = "metrics.jsonl"


def _fmt(metrics: dict[str, Any]) -> str:
    parts = []
    if "reward" in metrics:
        std = metrics.get("reward_std")
        parts.append(f"reward {metrics['reward']:.3f}" + (f"±{std:.3f}" if std is not None else ""))
    for key, label in (("loss", "loss"), ("eval_loss", "eval loss")):
        if metrics.get(key) is not None:
            parts.append(f"{label} {metrics[key]:.4f}")
    if metrics.get("tokens_per_s"):
        parts.append(f"{metrics['tokens_per_s']:.0f} tok/s")
    return " · ".join(parts)


class TrainProgress:
    """Rich progress bar over optimizer steps plus the metrics JSONL of a train run."""

    def __init__(self, out_dir: Path, total_steps: int, *, initial_step: int = 0,
                 console: Console | None = None, title: str = "train"):
        self.path = Path(out_dir) / METRICS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.total, self.step = total_steps, initial_step
        self.last: dict[str, Any] = {}
        self.console = console or Console()
        self._progress = Progress(TextColumn(f"[bold]{title}[/]"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.description}"), TimeElapsedColumn(),
                                  TextColumn("ETA"), TimeRemainingColumn(), console=self.console)
        self._task = self._progress.add_task("", total=total_steps, completed=initial_step)
        self._t0 = time.time()

    def __enter__(self) -> "TrainProgress":
        self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._progress.stop()

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """Record the metrics of ``step`` (append to the JSONL, refresh the line)."""
        clean = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool)) or v is None}
        row = {"step": step, "time": time.time(), **clean}
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
        self.last.update(clean)
        self.step = max(self.step, step)
        self._progress.update(self._task, completed=self.step, description=_fmt(self.last))

    def status(self, text: str) -> None:
        """Show what the current step is doing (e.g. rollouts done so far) until the next log."""
        self._progress.update(self._task, description=f"[dim]{text}[/]" + (f" · {_fmt(self.last)}" if self.last else ""))

    def note(self, text: str) -> None:
        """A line above the progress bar (a checkpoint saved, a resume, a warning)."""
        self._progress.console.print(text)


def read_metrics(out_dir: Path) -> list[dict[str, Any]]:
    """Rows of a train run's ``metrics.jsonl`` (torn lines skipped)."""
    path = Path(out_dir) / METRICS_FILE
    rows = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows
