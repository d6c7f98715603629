"""The on-disk task format and its in-memory model.

Layout (compatible with SandMLE's released layout)::

    <task_id>/
      task.yaml                      # metadata: metric, direction, columns, thresholds, provenance
      prepared/public/               # everything an agent may see
        description.md  train.csv  test.csv  sample_submission.csv  [...]
      prepared/private/              # never enters a sandbox
        answers.csv  evaluator.py

A task from SandMLE's own release keeps ``answer.csv`` and ``evaluator.py`` *inside* ``public/``;
such files are listed in :attr:`Task.hidden_files` and filtered out of everything an agent sees.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Modality = Literal["tabular", "text", "image", "time_series", "audio", "graph", "multimodal"]


class MedalThresholds(BaseModel):
    """Score thresholds for gold/silver/bronze and the median, in the metric's own units."""

    gold: float
    silver: float
    bronze: float
    median: float

    def is_monotone(self, lower_is_better: bool) -> bool:
        """True when gold is strictly better than silver, silver than bronze, bronze than median."""
        seq = [self.gold, self.silver, self.bronze, self.median]
        pairs = list(zip(seq, seq[1:]))
        return all(a < b for a, b in pairs) if lower_is_better else all(a > b for a, b in pairs)


class Task(BaseModel):
    """A loaded task. ``public_dir`` minus ``hidden_files`` is all an agent may see."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    id: str
    root: Path
    public_dir: Path
    private_dir: Path | None = None
    metric: str
    lower_is_better: bool
    id_column: str = "id"
    target_columns: list[str] = Field(default_factory=list)
    modality: Modality = "tabular"
    task_type: str = "classification"
    thresholds: MedalThresholds | None = None
    leaderboard: list[float] | None = None  # best first, as MLE-bench's leaderboard.csv
    public_leaderboard: list[float] | None = None  # MLE-Dojo keeps a public and a private board
    answers_path: Path | None = None
    evaluator_path: Path | None = None
    hidden_files: list[Path] = Field(default_factory=list)
    format: Literal["sandmle", "sandmle-release", "mlebench"] = "sandmle"
    provenance: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _hidden_answers_stay_hidden(self) -> "Task":
        # The answers and the evaluator may sit inside public/ (SandMLE's release): hide them.
        for path in (self.answers_path, self.evaluator_path):
            if path is not None and _is_within(path, self.public_dir) and path not in self.hidden_files:
                self.hidden_files.append(path)
        return self

    def public_files(self) -> list[Path]:
        """Every file under ``public_dir`` an agent may see (hidden files removed)."""
        hidden = {p.resolve() for p in self.hidden_files}
        return sorted(
            p for p in self.public_dir.rglob("*")
            if p.is_file() and p.resolve() not in hidden and not p.is_symlink()
        )

    @property
    def description(self) -> str:
        path = self.public_dir / "description.md"
        return path.read_text(encoding="utf-8") if path.exists() else ""


def _is_within(path: Path, parent: Path) -> bool:
    try:
        path.resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False
