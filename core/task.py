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
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import TaskError

if TYPE_CHECKING:
    import pandas as pd

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
    # MLE-bench names it per competition (``sampleSubmission.csv``, ``sample_submission_null.csv``,
    # or a file under ``private/``); None means ``public_dir / "sample_submission.csv"``.
    sample_submission: Path | None = None
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
    def sample_submission_path(self) -> Path:
        """The task's sample submission (it may sit outside ``public_dir``, as in MLE-bench)."""
        return self.sample_submission or self.public_dir / "sample_submission.csv"

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


# ----------------------------------------------------------------------------- reading and writing
PUBLIC, PRIVATE = Path("prepared/public"), Path("prepared/private")
REQUIRED_PUBLIC = ("train.csv", "test.csv", "sample_submission.csv")


def _csv_columns(path: Path) -> list[str]:
    import pandas as pd

    try:
        return [str(c) for c in pd.read_csv(path, nrows=0).columns]
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a task error
        raise TaskError(f"{path}: not a readable CSV ({type(exc).__name__}: {exc})") from exc


def validate_task(task: Task) -> Task:
    """Check files, columns and thresholds of a loaded task; raise :class:`TaskError` naming each fault."""
    problems: list[str] = []
    if not task.public_dir.is_dir():
        raise TaskError(f"task {task.id!r}: public folder {task.public_dir} does not exist")
    # MLE-bench competitions ship folders of images/audio instead of train/test CSVs.
    data_files = [] if task.format == "mlebench" else [task.public_dir / n for n in REQUIRED_PUBLIC[:2]]
    for path in data_files + [task.sample_submission_path]:  # the sample may sit outside public/ (MLE-bench)
        if not path.is_file():
            problems.append(f"missing file {path}")
    if task.answers_path is None or not task.answers_path.is_file():
        problems.append(f"missing answers file {task.answers_path}")
    if task.evaluator_path is not None and not task.evaluator_path.is_file():
        problems.append(f"missing evaluator {task.evaluator_path}")
    if task.format != "sandmle-release" and not task.target_columns:
        problems.append("target_columns is empty")
    want = [task.id_column, *task.target_columns] if task.target_columns else []
    for label, path in (("answers", task.answers_path), ("sample submission", task.sample_submission_path)):
        if want and path is not None and path.is_file():
            missing = [c for c in want if c not in _csv_columns(path)]
            if missing:
                problems.append(f"{label} {path.name} lacks column(s) {missing}")
    if task.thresholds is not None and not task.thresholds.is_monotone(task.lower_is_better):
        order = "gold < silver < bronze < median" if task.lower_is_better else "gold > silver > bronze > median"
        problems.append(f"thresholds {task.thresholds.model_dump()} are not strictly monotone ({order} "
                        f"for a {'lower' if task.lower_is_better else 'higher'}-is-better metric)")
    if problems:
        raise TaskError(f"invalid task {task.id!r} at {task.root}:\n  " + "\n  ".join(problems))
    return task


def load_task(path: Path | str) -> Task:
    """Load and validate the task in ``path`` (a folder holding ``task.yaml``)."""
    root = Path(path)
    meta_path = root / "task.yaml"
    if not meta_path.is_file():
        raise TaskError(f"{root}: no task.yaml (not a task folder)")
    try:
        meta = yaml.safe_load(meta_path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise TaskError(f"{meta_path}: invalid YAML: {exc}") from exc
    if not isinstance(meta, dict):
        raise TaskError(f"{meta_path}: expected a mapping at the top level")
    missing = [k for k in ("id", "metric") if k not in meta]
    if missing:
        raise TaskError(f"{meta_path}: missing key(s) {missing}")
    fmt = meta.get("format", "sandmle")
    public = root / meta.get("public_dir", str(PUBLIC))
    answers = meta.get("answers", str(PRIVATE / "answers.csv"))
    evaluator = meta.get("evaluator")
    fields = {k: meta[k] for k in ("id_column", "target_columns", "modality", "task_type", "leaderboard",
                                   "public_leaderboard") if meta.get(k) is not None}
    try:
        lower = meta.get("lower_is_better")
        if lower is None:
            from sandmle.graders.metrics import get_metric

            lower = get_metric(meta["metric"]).lower_is_better
        task = Task(id=str(meta["id"]), root=root, public_dir=public, private_dir=root / PRIVATE,
                    metric=meta["metric"], lower_is_better=bool(lower), format=fmt,
                    thresholds=MedalThresholds(**meta["thresholds"]) if meta.get("thresholds") else None,
                    answers_path=root / answers, evaluator_path=root / evaluator if evaluator else None,
                    provenance=meta.get("provenance") or {}, **fields)
    except (ValidationError, KeyError, TypeError) as exc:
        raise TaskError(f"{meta_path}: {exc}") from exc
    return validate_task(task)


def _task_meta(task: Task) -> dict[str, Any]:
    rel = lambda p: str(Path(p).relative_to(task.root)) if p is not None else None  # noqa: E731
    return {"id": task.id, "metric": task.metric, "lower_is_better": task.lower_is_better,
            "id_column": task.id_column, "target_columns": list(task.target_columns),
            "modality": task.modality, "task_type": task.task_type,
            "thresholds": task.thresholds.model_dump() if task.thresholds else None,
            "leaderboard": task.leaderboard, "answers": rel(task.answers_path),
            "evaluator": rel(task.evaluator_path), "provenance": task.provenance}


def _write_meta_and_evaluator(task: Task) -> None:
    from sandmle.graders.evaluator import evaluator_source

    if task.evaluator_path is not None and task.answers_path is not None:
        task.evaluator_path.parent.mkdir(parents=True, exist_ok=True)
        th = task.thresholds.model_dump() if task.thresholds else {}
        task.evaluator_path.write_text(evaluator_source(
            task.metric, task.target_columns, task.id_column, th, task.lower_is_better,
            answers_file=str(Path(task.answers_path).relative_to(task.evaluator_path.parent))), encoding="utf-8")
    meta = _task_meta(task)
    if task.public_leaderboard:
        meta["public_leaderboard"] = task.public_leaderboard
    (task.root / "task.yaml").write_text(yaml.safe_dump(meta, sort_keys=False), encoding="utf-8")


def write_task(root: Path, *, task_id: str, train: "pd.DataFrame", test: "pd.DataFrame",
               answers: "pd.DataFrame", sample_submission: "pd.DataFrame", description: str, metric: str,
               lower_is_better: bool, id_column: str, target_columns: list[str],
               modality: str = "tabular", task_type: str = "classification",
               thresholds: MedalThresholds | None = None, leaderboard: list[float] | None = None,
               provenance: dict[str, Any] | None = None,
               extra_public_files: dict[str, bytes] | None = None) -> Task:
    """Write a task in the layout above (answers and ``evaluator.py`` under ``prepared/private/``)
    and return it loaded and validated."""
    root = Path(root)
    public, private = root / PUBLIC, root / PRIVATE
    public.mkdir(parents=True, exist_ok=True)
    private.mkdir(parents=True, exist_ok=True)
    train.to_csv(public / "train.csv", index=False)
    test.to_csv(public / "test.csv", index=False)
    sample_submission.to_csv(public / "sample_submission.csv", index=False)
    (public / "description.md").write_text(description, encoding="utf-8")
    for name, data in (extra_public_files or {}).items():
        target = (public / name).resolve()
        if not _is_within(target, public):
            raise TaskError(f"extra public file {name!r} would land outside {public}")
        target.parent.mkdir(parents=True, exist_ok=True)
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
    _write_meta_and_evaluator(task)
    return load_task(root)


def update_thresholds(task: Task, thresholds: MedalThresholds | None,
                      leaderboard: list[float] | None = None) -> Task:
    """Set a task's thresholds (and reference leaderboard), rewrite task.yaml + evaluator.py, reload."""
    updated = task.model_copy(update={"thresholds": thresholds,
                                      "leaderboard": leaderboard if leaderboard is not None else task.leaderboard})
    if thresholds is not None and not thresholds.is_monotone(task.lower_is_better):
        raise TaskError(f"task {task.id!r}: thresholds {thresholds.model_dump()} are not strictly monotone")
    _write_meta_and_evaluator(updated)
    return load_task(task.root)
